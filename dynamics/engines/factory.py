"""The engine an experiment's evaluators hold: the config's back end, loaded once with its base model."""

from __future__ import annotations

from dynamics.config import ExperimentConfig
from dynamics.engines.base import Engine


def make_engine(cfg: ExperimentConfig) -> Engine:
    """`eval.engine` over `model.name`: vLLM (GPU, tensor parallel, LoRA up to `lora.r`) or transformers."""
    if cfg.eval.engine == "vllm":
        from dynamics.engines.vllm import VLLMEngine

        return VLLMEngine.load(cfg.model.name, dtype=cfg.model.dtype, cache_dir=cfg.model.cache_dir,
                               tensor_parallel_size=cfg.eval.tensor_parallel_size, max_lora_rank=cfg.lora.r)
    from dynamics.engines.hf import HFEngine

    return HFEngine.load(cfg.model.name, dtype=cfg.model.dtype, cache_dir=cfg.model.cache_dir,
                         batch_size=cfg.eval.batch_size, merge_adapters=cfg.eval.merge_adapters,
                         onednn_linear=cfg.eval.onednn_linear)
