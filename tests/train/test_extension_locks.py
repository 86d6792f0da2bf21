"""A torch-extension build lock left by a killed process is removed (with a line) instead of hanging every
later run; a lock a live process holds is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from torch.utils.file_baton import FileBaton

from dynamics.train.extensions import clear_stale_locks

# What torch's JIT loader does: O_EXCL-create the lock and keep it open while it builds or loads.
# (torch's own FileBaton, loaded from its file: importing torch would take seconds)
TAKE = """
import importlib.util, os, sys, time
torch_dir = importlib.util.find_spec("torch").submodule_search_locations[0]
spec = importlib.util.spec_from_file_location("file_baton", os.path.join(torch_dir, "utils", "file_baton.py"))
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
b = module.FileBaton(sys.argv[1])
assert b.try_acquire()
print("taken", flush=True)
time.sleep(600)
"""


def _taker(lock):
    p = subprocess.Popen([sys.executable, "-c", TAKE, str(lock)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "taken"
    return p


def test_lock_of_a_killed_builder_is_stale_and_removed(tmp_path):
    lock = tmp_path / "py311_cpu" / "deepspeed_shm_comm" / "lock"
    lock.parent.mkdir(parents=True)
    p = _taker(lock)
    os.kill(p.pid, signal.SIGKILL)  # killed mid-build: torch never removes its lock
    p.wait()
    assert lock.exists() and not FileBaton(str(lock)).try_acquire()  # every later run would wait forever
    lines = clear_stale_locks(tmp_path)
    assert len(lines) == 1 and str(lock) in lines[0] and "stale" in lines[0]
    b = FileBaton(str(lock))
    assert b.try_acquire()
    b.release()


def test_lock_held_by_a_live_process_is_kept(tmp_path):
    lock = tmp_path / "ext" / "lock"
    lock.parent.mkdir(parents=True)
    p = _taker(lock)
    try:
        assert clear_stale_locks(tmp_path) == [] and lock.exists()
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
