"""Shared fixtures: the offline data copy, tiny configs, and one real local Ray cluster per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "data" / "emergent-misalignment"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"offline data copy not found at {DATA_DIR}")
    return DATA_DIR


def tiny_config(tmp_path: Path, **sections) -> dict:
    """A config dict for a fast real run: tiny Llama, 2 CPU workers, log-prob metrics only."""
    cfg = {
        "name": "t",
        "output_dir": str(tmp_path / "results"),
        "model": {"name": "tiny:llama"},
        "data": {"dataset": "quickstart:insecure", "data_dir": str(DATA_DIR), "max_examples": 48,
                 "max_seq_length": 192},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "o_proj", "up_proj"]},
        "optim": {"lr": 5e-3, "warmup_steps": 0},
        "train": {"per_device_batch_size": 2, "gradient_accumulation_steps": 2, "max_steps": 4,
                  "checkpoint_every": 2, "num_workers": 2, "zero_stage": 2},
        "eval": {"evals": ["logprob"], "judge": {"kind": "none"}},
        "wandb": {"mode": "offline", "project": "test"},
    }
    for key, value in sections.items():
        cfg.setdefault(key, {})
        if isinstance(value, dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray cluster (4 logical CPUs on 2 cores, as the quickstart uses)."""
    import ray

    from dynamics.orchestration.run import ensure_ray

    ensure_ray(4)
    yield ray
    ray.shutdown()
