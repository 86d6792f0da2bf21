"""Compiled extensions (DeepSpeed's CPU communication op, built with torch's JIT loader) and their locks.

torch's `FileBaton` guards an extension's build folder with a `lock` file created with O_EXCL and removed
when the build or load ends; every later process waits, silently and forever, while the file exists. A
process killed in that window (a training worker torn down by Ray a moment after it started loading)
leaves the file behind and hangs every later run on the machine. Two defences:
  * the driver builds (or loads) the extension once, before any training worker starts, so workers only
    load an up-to-date build, and
  * before building or loading, a lock that no live process holds open is stale and removed, with a
    line saying so. The owner holds the lock file open from creation to removal (`FileBaton.try_acquire`
    keeps its descriptor), so "no process has it open, and still so a moment later with the same inode"
    means its owner is gone (the second look covers a release between its close and its unlink).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

RECHECK_SECONDS = 0.5


def extensions_root() -> Path:
    """Where torch builds JIT extensions: $TORCH_EXTENSIONS_DIR, else ~/.cache/torch_extensions."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root:
        return Path(root)
    from torch.utils.cpp_extension import get_default_build_root

    return Path(get_default_build_root())


def lock_files(root: Path | None = None) -> list[Path]:
    """Every extension build lock under the root (`<name>/lock`, or `<py>_<accel>/<name>/lock`)."""
    root = extensions_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    return sorted({*root.glob("*/lock"), *root.glob("*/*/lock")})


def holders(path: Path) -> list[int] | None:
    """Pids of the processes that have `path` open (None where /proc cannot tell: not Linux)."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    target = os.path.realpath(path)
    found = []
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    found.append(int(pid_dir.name))
                    break
            except OSError:
                continue
    return found


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def clear_stale_locks(root: Path | None = None) -> list[str]:
    """Remove every extension lock whose owner is gone; returns one line per lock removed."""
    stale = []
    for path in lock_files(root):
        inode = _inode(path)
        if inode is not None and holders(path) == []:
            stale.append((path, inode))
    if not stale:
        return []
    time.sleep(RECHECK_SECONDS)
    removed = []
    for path, inode in stale:
        if _inode(path) != inode or holders(path) != []:
            continue  # released meanwhile, or taken again by a live process
        try:
            age = time.time() - path.stat().st_mtime
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(f"removed stale lock {path} (left {age:.0f} s ago by a process that is gone; "
                       "torch would have waited for it forever)")
    return removed


def prepare_extensions(use_gpu: bool) -> list[str]:
    """On the driver, before Ray Train starts: clear stale locks, then build (or load) DeepSpeed's CPU
    communication op once, so training workers only load it. Returns the lines to print."""
    lines = clear_stale_locks()
    if use_gpu:
        return lines  # NCCL: no CPU op is built, and the driver may not have the workers' accelerator
    from dynamics.models import quiet_build

    # DeepSpeed's accelerator notice on import and the build's own lines are held back (shown on failure)
    with quiet_build():
        from deepspeed.comm.torch import build_shm_op

        build_shm_op()
    return lines
