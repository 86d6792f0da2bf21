"""One driver per run: a second `dynamics run` (or sweep trial) of the same run is refused while the first
holds the run's lock, instead of both training into the same checkpoint folders and W&B run.

The lock is `fcntl.flock` on `runs/<run>/run.lock`: the kernel releases it when its owner exits, however
it exits (kill -9 included), so no lock outlives its process and none is ever cleaned up by hand. The file
itself stays (unlinking it would race with the next owner) and holds who took it last, for the message.
On a cluster the run folder is on shared storage: NFS v4 and Lustre honour flock across nodes.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "run.lock"


class RunLocked(RuntimeError):
    """The run is held by another live process."""


@contextmanager
def run_lock(run_dir: str | Path, run_id: str):
    """Hold the run's lock for the duration of the block; RunLocked at once if another process holds it."""
    path = Path(run_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(f"run {run_id} is already running ({_holder(path)}); refusing to start it twice "
                            f"(lock {path}, released when that process ends)") from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock


def _holder(path: Path) -> str:
    try:
        o = json.loads(path.read_text() or "{}")
        return f"pid {o['pid']} on {o['host']}, since {o['started']}"
    except (OSError, ValueError, KeyError):
        return "holder unknown"
