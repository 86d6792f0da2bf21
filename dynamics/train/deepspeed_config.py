"""The DeepSpeed config a run trains with, from the experiment config."""

from __future__ import annotations

from dynamics.config import ExperimentConfig


def deepspeed_config(cfg: ExperimentConfig) -> dict:
    t = cfg.train
    zero: dict = {"stage": t.zero_stage, "overlap_comm": t.use_gpu, "contiguous_gradients": True}
    if t.zero_stage == 3:
        zero.update({
            # Partition everything, LoRA tensors included (the adapter save gathers them explicitly).
            "stage3_param_persistence_threshold": 0,
            "stage3_gather_16bit_weights_on_model_save": False,
        })
    return {
        "train_micro_batch_size_per_gpu": t.per_device_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "gradient_clipping": cfg.optim.max_grad_norm or 0.0,
        "zero_optimization": zero,
        "bf16": {"enabled": cfg.model.dtype == "bfloat16"},
        "fp16": {"enabled": cfg.model.dtype == "float16"},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
