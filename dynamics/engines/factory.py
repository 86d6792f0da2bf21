"""The engine an experiment's evaluators hold: the config's back end, loaded once with its base model."""

from __future__ import annotations

from dynamics.config import ExperimentConfig
from dynamics.engines.base import Engine


def make_engine(cfg: ExperimentConfig, threads: int | None = None) -> Engine:
    """`eval.engine` over `model.name`: vLLM (GPU with tensor parallelism, or its CPU build; LoRA up to
    `lora.r`; `eval.vllm` settings) or transformers. `threads`: the evaluator's CPU share (vLLM on CPU)."""
    if cfg.eval.engine == "vllm":
        from dynamics.engines.vllm import VLLMEngine

        v = cfg.eval.vllm
        device = v.resolved_device(cfg.eval.num_gpus)
        return VLLMEngine.load(cfg.model.name, dtype=v.dtype or ("float32" if device == "cpu" else cfg.model.dtype),
                               cache_dir=cfg.model.cache_dir, tensor_parallel_size=cfg.eval.tensor_parallel_size,
                               max_lora_rank=cfg.lora.r, device=device, threads=threads,
                               kv_cache_gib=v.kv_cache_gib, thread_bind=v.thread_bind,
                               enforce_eager=v.enforce_eager, multiprocessing=v.multiprocessing,
                               max_model_len=v.max_model_len, gpu_memory_utilization=v.gpu_memory_utilization,
                               lora=v.lora, seed=cfg.seed)
    from dynamics.engines.hf import HFEngine

    return HFEngine.load(cfg.model.name, dtype=cfg.model.dtype, cache_dir=cfg.model.cache_dir,
                         batch_size=cfg.eval.batch_size, merge_adapters=cfg.eval.merge_adapters,
                         onednn_linear=cfg.eval.onednn_linear)
