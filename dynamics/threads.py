"""Each process's torch thread count = its Ray CPU share, so training workers and evaluators sharing a
machine do not oversubscribe its cores.

Ray sets OMP_NUM_THREADS from an actor's `num_cpus` only when the variable is not already set (a user's
or a launcher's value wins, and a driver gets none), and torch, with it unset, starts one thread per core
in every process: on the 2-core box two training workers and an evaluator could then run 6 compute
threads on 2 cores. So the count is set explicitly from the configured share. Called
first thing in a Ray Train worker (`cpus_per_worker`) and in an evaluator actor (`eval.num_cpus`).
"""

from __future__ import annotations

import os


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def match_cpu_share(num_cpus: float) -> int:
    """Set torch's intra-op threads (and OMP_NUM_THREADS for child processes) to floor(num_cpus), at
    least 1 and at most the usable cores; return the count. Floor: a 1.5-CPU share must not take 2 cores."""
    import torch

    threads = max(1, min(usable_cores(), int(num_cpus)))
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads
