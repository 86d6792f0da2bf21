"""How each process uses the CPU: torch's thread count and, where training and evaluation share a
machine's cores, which of the two runs first.

Threads: Ray sets OMP_NUM_THREADS from an actor's `num_cpus` only when the variable is not already set (a
user's or a launcher's value wins, and a driver gets none), and torch, with it unset, starts one thread per
core in every process: on the 2-core box two training workers and an evaluator could then run 6 compute
threads on 2 cores. So the count is set explicitly from the configured share (`match_cpu_share`), called
first thing in a Ray Train worker (`train.cpus_per_worker`) and in an evaluator actor (`eval.num_cpus`, or
`eval.threads` where set).

Precedence: on a machine without accelerators, training workers and the evaluator compete for the same
cores and the same memory bandwidth. Run side by side at equal priority, both slow down by more than their
share (on the 2-core box the quickstart's evaluator took 250 s for checkpoint 0 while training ran, against
about 160 s for a checkpoint after training) and the evaluation queue falls behind. `train.cpu_priority: idle` puts the training workers on
the CPU time the evaluator leaves (`yield_cpu`), so the evaluator runs first whenever it has a checkpoint:
evaluation keeps pace and the two stop thrashing each other's caches. On GPU nodes the two use different
devices and the default, "normal", leaves scheduling alone.
"""

from __future__ import annotations

import os
import sys


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def match_cpu_share(num_cpus: float, threads: int | str | None = None) -> int:
    """Set torch's intra-op threads (and OMP_NUM_THREADS for child processes) and return the count:
    `threads` when given ("all": every usable core), else floor(num_cpus); at least 1 and at most the
    usable cores. Floor: a 1.5-CPU share must not take 2 cores."""
    import torch

    wanted = usable_cores() if threads == "all" else int(threads) if threads is not None else int(num_cpus)
    count = max(1, min(usable_cores(), wanted))
    torch.set_num_threads(count)
    os.environ["OMP_NUM_THREADS"] = str(count)
    return count


def thread_ids() -> list[int]:
    """The kernel ids of this process's threads (Linux), or [] where /proc has no task list."""
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def yield_cpu() -> str:
    """Make this process run on the CPU time others leave idle: every thread it has now and, by
    inheritance, every thread started after goes to Linux's SCHED_IDLE policy at niceness 19. Returns what
    was set ("SCHED_IDLE" or, where there is no such policy, "nice 19").

    Why SCHED_IDLE and not a nice value alone: Ray starts every worker process at niceness 15 (its
    `worker_niceness`), evaluators and training workers alike, and an unprivileged process cannot lower
    its own niceness, so the most nice can say is 19 against 15, a CPU-share ratio of 15:36. A SCHED_IDLE
    thread gets a weight of 3 against 36: while the evaluator has a checkpoint it gets about 92% of each
    core; when it has none, training gets all of them. Any process may move itself to SCHED_IDLE.

    On Linux a policy and a nice value belong to a thread, not to the process: changing only the calling
    thread would leave a Ray worker's other threads, and the threads they start, as they were. So every
    thread in /proc/self/task is changed."""
    tids = thread_ids() if sys.platform.startswith("linux") else []
    idle = getattr(os, "SCHED_IDLE", None)
    if not tids or idle is None:  # macOS and the BSDs: a per-process nice value
        os.setpriority(os.PRIO_PROCESS, 0, max(19, os.getpriority(os.PRIO_PROCESS, 0)))
        return "nice 19"
    for tid in tids:
        try:
            os.sched_setscheduler(tid, idle, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, 19)
        except ProcessLookupError:  # the thread ended meanwhile
            pass
    return "SCHED_IDLE"


def cpu_priority() -> str:
    """This thread's scheduling, for progress lines: "SCHED_IDLE", "nice N" or "normal"."""
    if getattr(os, "SCHED_IDLE", None) is not None and os.sched_getscheduler(0) == os.SCHED_IDLE:
        return "SCHED_IDLE"
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    return f"nice {nice}" if nice else "normal"
