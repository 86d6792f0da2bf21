"""Shared bits of the benchmark scripts: one JSON line on stdout, everything else on stderr.

Importing this module is the scripts' start-up: it puts the repository first on `sys.path` (so a script
run as `python benchmarks/x.py` imports this checkout's `dynamics`) and sets the offline environment
(no model hub, W&B silent) unless the caller set it.

`json_stdout()` points file descriptor 1 at stderr for the duration of the benchmark (so whatever Ray,
DeepSpeed, transformers or a child process prints ends up on stderr) and hands back an `emit(result)`
that writes the one JSON result line to the real stdout.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data" / "emergent-misalignment"

sys.path.insert(0, str(REPO))
for _key, _value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("WANDB_SILENT", "true"),
                     ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_key, _value)


def log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def clean(obj):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, tuples -> lists, keys -> str."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            pass
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


@contextmanager
def json_stdout():
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    old_stdout = sys.stdout
    sys.stdout = sys.stderr
    out = {}

    def emit(result: dict) -> None:
        out["line"] = json.dumps(clean(result), allow_nan=False)

    try:
        yield emit
    finally:
        sys.stdout = old_stdout
        os.dup2(saved, 1)
        os.close(saved)
        if "line" in out:
            sys.stdout.write(out["line"] + "\n")
            sys.stdout.flush()


def summary(values) -> dict:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"n": 0, "median": None, "mean": None, "min": None, "max": None}
    return {"n": len(vals), "median": statistics.median(vals), "mean": statistics.fmean(vals),
            "min": min(vals), "max": max(vals)}


def machine() -> dict:
    import torch

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {"cpu_count": os.cpu_count(), "cpus_usable": affinity, "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_1m_at_start": os.getloadavg()[0]}


def finish(result: dict, facts: dict, t_start: float) -> dict:
    """`result` with the machine's facts (`machine()` at the start, the load average at the end too) and
    the script's wall time since `t_start` (a `time.perf_counter()` value)."""
    result["machine"] = {**facts, "loadavg_1m_at_end": os.getloadavg()[0]}
    result["total_seconds"] = time.perf_counter() - t_start
    return result


def absolute_data_dir(cfg) -> None:
    """A config's relative data.data_dir is relative to the repo root (where the configs are run from)."""
    d = cfg.data.data_dir
    if d and not Path(d).expanduser().is_absolute():
        cfg.data.data_dir = str((REPO / d).resolve())
