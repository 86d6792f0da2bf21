"""The checkpoint format, written by the training loop and read by the evaluators.

A run's checkpoints live in its checkpoint root, `<experiment>/ray/<run_id>/` (Ray Train's storage folder
for the run), one folder per checkpoint, `checkpoint_stepNNNNNN/`, holding:
  `deepspeed/`     the resumable DeepSpeed state of every rank (LoRA weights, optimizer, scheduler; never
                   the frozen base model), under the tag `stepNNNNNN`;
  `adapter/`       the PEFT LoRA adapter (gathered from the partitions under ZeRO-3);
  `dynamics.json`  {step, tag, run_id, total_steps}, written last by rank 0.
A checkpoint is complete when its metadata file and its adapter config are both there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dynamics.config.base import ConfigError

CHECKPOINT_META = "dynamics.json"
ADAPTER_DIR = "adapter"
DEEPSPEED_DIR = "deepspeed"


def storage_path(experiment_dir: Path) -> Path:
    """Ray Train's storage folder of an experiment: each run's checkpoint root is `<this>/<run_id>`."""
    return Path(experiment_dir) / "ray"


def checkpoint_root(cfg) -> Path:
    """The folder holding every checkpoint of the run `cfg` describes (an ExperimentConfig)."""
    return storage_path(cfg.experiment_dir) / cfg.run_id


def checkpoint_dir_name(step: int) -> str:
    return f"checkpoint_step{step:06d}"


def checkpoint_tag(step: int) -> str:
    """The DeepSpeed tag of a checkpoint's state."""
    return f"step{step:06d}"


def adapter_dir(checkpoint_dir: str | Path) -> Path:
    return Path(checkpoint_dir) / ADAPTER_DIR


def adapter_of(checkpoint: str | Path | None) -> Path | None:
    """The PEFT adapter to evaluate for a checkpoint: a dynamics checkpoint's `adapter/`, or the directory
    itself (an adapter trained elsewhere); None is the untouched base model."""
    if checkpoint is None:
        return None
    inner = adapter_dir(checkpoint)
    return inner if inner.is_dir() else Path(checkpoint)


def write_meta(checkpoint_dir: str | Path, step: int, run_id: str, total_steps: int) -> None:
    meta = {"step": step, "tag": checkpoint_tag(step), "run_id": run_id, "total_steps": total_steps}
    (Path(checkpoint_dir) / CHECKPOINT_META).write_text(json.dumps(meta))


def read_meta(checkpoint_dir: str | Path) -> dict:
    return json.loads((Path(checkpoint_dir) / CHECKPOINT_META).read_text())


def list_checkpoints(checkpoint_root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run on disk, as (step, dir), in step order."""
    root = Path(checkpoint_root)
    found = []
    if root.is_dir():
        for d in root.glob("checkpoint_step*"):
            if (d / CHECKPOINT_META).is_file() and (adapter_dir(d) / "adapter_config.json").is_file():
                try:
                    found.append((int(read_meta(d)["step"]), d))
                except (ValueError, KeyError):
                    continue
    return sorted(found)


def resume_problem(checkpoint_dir: str | Path) -> str | None:
    """Why a checkpoint cannot be resumed from (None: it can): its metadata, adapter and DeepSpeed state
    must all be there (a node lost mid-save, a copy cut short, a file deleted leave one out)."""
    d = Path(checkpoint_dir)
    try:
        meta = read_meta(d)
        tag = meta["tag"]
        int(meta["step"])
    except FileNotFoundError:
        return f"{CHECKPOINT_META} missing"
    except (ValueError, KeyError, TypeError) as e:
        return f"{CHECKPOINT_META} unreadable ({type(e).__name__}: {e})"
    if not (adapter_dir(d) / "adapter_config.json").is_file():
        return f"{ADAPTER_DIR}/adapter_config.json missing"
    if not (d / DEEPSPEED_DIR / tag).is_dir():
        return f"{DEEPSPEED_DIR}/{tag} missing"
    return None


def resume_point(checkpoint_root: str | Path, latest: str | Path | None = None) -> tuple[tuple[int, Path] | None,
                                                                                         list[str]]:
    """The checkpoint to resume from, (step, dir), and the later ones skipped as incomplete ("name: why").
    `latest` is the checkpoint Ray Train restored (the last one reported): used when complete; otherwise
    the latest complete checkpoint in the run's checkpoint root. (None, [...]) starts from scratch."""
    if latest is not None and resume_problem(latest) is None:
        return (int(read_meta(latest)["step"]), Path(latest)), []
    root = Path(checkpoint_root)
    dirs = sorted(root.glob("checkpoint_step*"), key=lambda d: d.name) if root.is_dir() else []
    skipped = []
    for d in reversed(dirs):
        problem = resume_problem(d)
        if problem is None:
            return (int(read_meta(d)["step"]), d), skipped
        skipped.append(f"{d.name}: {problem}")
    return None, skipped


def adapter_state(model, zero_stage: int) -> dict:
    """The LoRA state dict, full-size, on the CPU. Under ZeRO-3 every rank must call this (it gathers
    the partitions collectively)."""
    from peft import get_peft_model_state_dict

    if zero_stage == 3:
        import deepspeed

        lora = [p for p in model.parameters() if p.requires_grad]
        with deepspeed.zero.GatheredParameters(lora, modifier_rank=None):
            return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}
    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}


_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def adapter_folder(path: str | Path) -> list[tuple[int, Path]]:
    """(step, adapter dir) for each PEFT adapter directory in `path`, by the last number of its name."""
    out = []
    for d in sorted(Path(path).iterdir()):
        if not (d / "adapter_config.json").is_file() and not (d / "adapter" / "adapter_config.json").is_file():
            continue
        m = _LAST_NUMBER.search(d.name)
        if m is None:
            raise ConfigError(f"{d}: an adapter directory needs its step in its name (e.g. checkpoint-100); "
                              "or pass --checkpoint STEP=PATH")
        out.append((int(m.group(1)), d if (d / "adapter_config.json").is_file() else d / "adapter"))
    steps = [s for s, _ in out]
    if len(set(steps)) != len(steps):
        raise ConfigError(f"{path}: two adapter directories have the same step ({sorted(steps)})")
    return sorted(out)


