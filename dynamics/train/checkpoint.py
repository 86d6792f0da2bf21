"""The checkpoint format, written by the training loop and read by the evaluators.

A run's checkpoints live in its checkpoint root, `<experiment>/ray/<run_id>/` (Ray Train's storage folder
for the run), one folder per checkpoint, `checkpoint_stepNNNNNN/`, holding:
  `deepspeed/`     the resumable DeepSpeed state of every rank (LoRA weights, optimizer, scheduler; never
                   the frozen base model), under the tag `stepNNNNNN`;
  `adapter/`       the PEFT LoRA adapter (gathered from the partitions under ZeRO-3);
  `dynamics.json`  {step, tag, run_id, total_steps, world}, written by rank 0;
  `manifest-rankR.json`  {files: {relative path: [size, sha256]}} of every file rank R wrote, written
                   last by each rank.
Ray Train copies each rank's folder into storage in an order of its own, so "written last" in the rank's
folder says nothing about the copy: a copy cut short (a full disk, a lost node) can leave the metadata and
part of the rest. A checkpoint is complete when every rank's manifest is there and every file it lists has
its size (listing: `list_checkpoints`) and its checksum (resume, and the adapter before it is evaluated).
Checkpoints written before manifests existed (no `world` in their metadata) keep the old rule: metadata and
adapter config there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dynamics.config.base import ConfigError
from dynamics.files import sha256_of

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


def write_meta(checkpoint_dir: str | Path, step: int, run_id: str, total_steps: int, world: int | None = None) -> None:
    meta = {"step": step, "tag": checkpoint_tag(step), "run_id": run_id, "total_steps": total_steps}
    if world is not None:  # a checkpoint with manifests: one per rank
        meta["world"] = world
    (Path(checkpoint_dir) / CHECKPOINT_META).write_text(json.dumps(meta))


def read_meta(checkpoint_dir: str | Path) -> dict:
    return json.loads((Path(checkpoint_dir) / CHECKPOINT_META).read_text())


def manifest_name(rank: int) -> str:
    return f"manifest-rank{rank}.json"


def write_manifest(checkpoint_dir: str | Path, rank: int) -> None:
    """Rank `rank`'s manifest of every file in its checkpoint folder: call it last, after everything else."""
    d = Path(checkpoint_dir)
    files = {p.relative_to(d).as_posix(): [p.stat().st_size, sha256_of(p)]
             for p in sorted(d.rglob("*")) if p.is_file() and not p.name.startswith("manifest-rank")}
    (d / manifest_name(rank)).write_text(json.dumps({"rank": rank, "files": files}))


def checkpoint_problem(checkpoint_dir: str | Path, checksums: bool = False, under: str = "") -> str | None:
    """Why a checkpoint is not complete (None: it is), naming the file: metadata, adapter config, every
    rank's manifest, and every file the manifests list with its size (and checksum when `checksums`;
    `under` limits the files checked to that subfolder, e.g. the adapter before it is evaluated)."""
    d = Path(checkpoint_dir)
    try:
        meta = read_meta(d)
        int(meta["step"])
        str(meta["tag"])
    except FileNotFoundError:
        return f"{CHECKPOINT_META} missing"
    except (ValueError, KeyError, TypeError) as e:
        return f"{CHECKPOINT_META} unreadable ({type(e).__name__}: {e})"
    if not (adapter_dir(d) / "adapter_config.json").is_file():
        return f"{ADAPTER_DIR}/adapter_config.json missing"
    if "world" not in meta:  # written before manifests: the old rule
        return None
    for rank in range(int(meta["world"])):
        try:
            files = json.loads((d / manifest_name(rank)).read_text())["files"]
        except FileNotFoundError:
            return f"{manifest_name(rank)} missing (a save or copy cut short)"
        except (ValueError, KeyError, TypeError):
            return f"{manifest_name(rank)} unreadable (cut short)"
        for rel, (size, digest) in files.items():
            if under and not rel.startswith(under):
                continue
            p = d / rel
            try:
                have = p.stat().st_size
            except OSError:
                return f"{rel} missing"
            if have != size:
                return f"{rel} has {have} bytes, its manifest says {size} (cut short or damaged)"
            if checksums and sha256_of(p) != digest:
                return f"{rel} does not match its manifest's checksum (damaged)"
    return None


def list_checkpoints(checkpoint_root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run on disk, as (step, dir), in step order (sizes checked, see above)."""
    root = Path(checkpoint_root)
    found = []
    if root.is_dir():
        for d in root.glob("checkpoint_step*"):
            if checkpoint_problem(d) is None:
                found.append((int(read_meta(d)["step"]), d))
    return sorted(found)


def at_path(checkpoint_dir: str | Path, problem: str) -> str:
    """A problem ("adapter/x.safetensors has ...") with its file's full path: "<dir>/adapter/x.safetensors: has ..."."""
    file, _, why = problem.partition(" ")
    return f"{Path(checkpoint_dir) / file}: {why}"


def incomplete_checkpoints(checkpoint_root: str | Path) -> list[str]:
    """"<file>: why" for each checkpoint folder of a run that is not complete (being written, cut short or
    damaged): what `list_checkpoints` leaves out, said rather than skipped in silence."""
    root = Path(checkpoint_root)
    dirs = sorted(root.glob("checkpoint_step*")) if root.is_dir() else []
    return [at_path(d, problem) for d in dirs if (problem := checkpoint_problem(d)) is not None]


def resume_problem(checkpoint_dir: str | Path) -> str | None:
    """Why a checkpoint cannot be resumed from (None: it can): complete with every checksum right, and
    its DeepSpeed state there (a node lost mid-save, a copy cut short, a file deleted leave one out)."""
    d = Path(checkpoint_dir)
    problem = checkpoint_problem(d, checksums=True)
    if problem is not None:
        return problem
    tag = read_meta(d)["tag"]
    if not (d / DEEPSPEED_DIR / tag).is_dir():
        return f"{DEEPSPEED_DIR}/{tag} missing"
    return None


def adapter_problem(checkpoint_dir: str | Path) -> str | None:
    """Why a dynamics checkpoint's adapter cannot be evaluated (None: it can), naming the file: checked
    against the manifest's checksums (a checkpoint without one: not checked here)."""
    d = Path(checkpoint_dir)
    if not (d / CHECKPOINT_META).is_file():
        return None  # an adapter trained elsewhere: nothing to check against
    problem = checkpoint_problem(d, checksums=True, under=ADAPTER_DIR + "/")
    return None if problem is None else at_path(d, problem)


def resume_point(checkpoint_root: str | Path) -> tuple[tuple[int, Path] | None, list[str]]:
    """The checkpoint to resume from, (step, dir): the latest complete one on disk in the run's checkpoint
    root, whatever Ray Train's own record says (it can lag behind the disk, e.g. after Ctrl-C); and the
    later ones skipped as incomplete ("name: why"). (None, [...]) starts from scratch."""
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


