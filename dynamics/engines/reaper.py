"""Child processes that die with their parent, however the parent dies.

vLLM started with multiprocessing (its default on a GPU) runs its engine core, and with tensor
parallelism its workers, in child processes of the process that made the `LLM`: here a Ray evaluator
actor. A Ray actor that is killed (`ray.kill`, SIGKILL, out of memory) gets no chance to stop them, and
vLLM's engine core does not watch its parent: it would stay, holding the model's memory (a GPU's), as an
orphan. So `reap_with_parent(pids)` starts a small watchdog process in its own session: it polls whether
its parent (the actor) is still its parent and, once the actor is gone, kills the given processes and
their descendants, then exits; it also exits once they are all gone (a clean `close()`).

On CPU the vLLM engine runs in the actor's own process by default (`eval.vllm.multiprocessing`), so there
is nothing to reap: it dies with the actor by construction.
"""

from __future__ import annotations

import os
import subprocess
import sys

WATCHDOG = r"""
import os, sys, time
import psutil
parent = int(sys.argv[1])
procs = []
for arg in sys.argv[2:]:  # "pid:create_time": a pid the system gave to another process since is never adopted
    pid, created = arg.split(":")
    try:
        p = psutil.Process(int(pid))
        if abs(p.create_time() - float(created)) < 1e-3:
            procs.append(p)
    except psutil.NoSuchProcess:
        pass
while procs:
    if os.getppid() != parent:  # the parent died: this watchdog was handed to init/a subreaper
        victims = []
        for p in procs:
            try:
                victims += [p] + p.children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        for v in victims:
            try:
                v.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=10)
        break
    def alive(p):
        try:  # a process can end between the two checks
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    procs = [p for p in procs if alive(p)]
    time.sleep(0.5)
"""


def children_of_this_process() -> set[int]:
    import psutil

    return {c.pid for c in psutil.Process().children(recursive=True)}


def reap_with_parent(pids) -> subprocess.Popen | None:
    """A watchdog that kills `pids` (and their descendants) when this process dies; None for no pids.
    Each pid goes with its start time, so a pid reused by another process (the system's pid range can be
    small: 32768 here) is never taken for it."""
    import psutil

    tagged = []
    for pid in sorted(int(p) for p in pids):
        try:
            tagged.append(f"{pid}:{psutil.Process(pid).create_time()!r}")
        except psutil.NoSuchProcess:  # already gone: nothing to reap
            pass
    if not tagged:
        return None
    return subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), *tagged],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
