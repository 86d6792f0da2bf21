"""Training yields the CPU to evaluation on a shared machine (`train.cpu_priority: idle`), and each
process's torch thread count follows its share or `eval.threads`. The scheduling checks run in child
processes: a process cannot undo SCHED_IDLE or lower its niceness, and the test process must stay as it is."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dynamics.config import ExperimentConfig
from dynamics.orchestration.progress import format_event
from dynamics.threads import usable_cores
from tests.conftest import REPO, tiny_config

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")


def run_child(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@linux_only
def test_every_thread_and_every_later_thread_yields_the_cpu():
    out = run_child("""
        import os, threading
        from dynamics.threads import cpu_priority, thread_ids, yield_cpu
        assert cpu_priority() == "normal" or cpu_priority().startswith("nice")
        stop = threading.Event()
        early = [threading.Thread(target=stop.wait) for _ in range(3)]  # threads started before (Ray's, gloo's)
        for t in early: t.start()
        assert yield_cpu() == "SCHED_IDLE"
        late = threading.Thread(target=stop.wait); late.start()        # started after: inherits it
        tids = thread_ids()
        print(len(tids), {os.sched_getscheduler(t) == os.SCHED_IDLE for t in tids},
              {os.getpriority(os.PRIO_PROCESS, t) for t in tids}, cpu_priority())
        stop.set()
    """)
    assert out.split("\n")[0] == "5 {True} {19} SCHED_IDLE"  # main + 3 early + 1 late


def test_cpu_priority_setting(tmp_path):
    with pytest.raises(Exception, match="cpu_priority"):
        ExperimentConfig.model_validate(tiny_config(tmp_path, train={"cpu_priority": "high"}))


def test_thread_counts_follow_the_share_or_the_setting():
    out = run_child("""
        import torch
        from dynamics.threads import match_cpu_share, usable_cores
        print(match_cpu_share(1.5), torch.get_num_threads())        # floor of the share
        print(match_cpu_share(1, "all"), torch.get_num_threads())   # every usable core
        print(match_cpu_share(1, 64), match_cpu_share(0.2))         # capped by the cores, at least 1
    """).split("\n")
    cores = usable_cores()
    assert out[0] == "1 1"
    assert out[1] == f"{cores} {cores}"
    assert out[2] == f"{cores} 1"


def test_config_keys_and_the_quickstart_preset(tmp_path):
    cfg = ExperimentConfig.model_validate(tiny_config(tmp_path))
    assert cfg.train.cpu_priority == "normal" and cfg.eval.threads is None  # clusters: scheduling left alone
    from dynamics.config import load_config

    qs = load_config(REPO / "jobs/configs/quickstart.yaml")
    assert qs.train.cpu_priority == "idle" and qs.eval.threads == "all"
    with pytest.raises(Exception, match="threads"):
        ExperimentConfig.model_validate(tiny_config(tmp_path, eval={"threads": "some"}))


def test_train_start_line_says_how_training_uses_the_cpu():
    e = {"type": "train_start", "run": "r", "start_step": 0, "total_steps": 30, "examples": 382, "world": 2,
         "threads": 1, "cpu_priority": "SCHED_IDLE"}
    assert format_event(e) == ("[r] train starting: 30 optimizer steps, 382 examples, 2 worker(s), "
                               "1 torch thread(s) each, SCHED_IDLE (evaluation first)")
    e.update(cpu_priority="normal")
    assert format_event(e).endswith("2 worker(s), 1 torch thread(s) each")
    assert usable_cores() >= 1


# -- back-pressure: train.max_eval_lag --------------------------------------------------------------

def test_max_eval_lag_is_validated_and_off_by_default(tmp_path):
    assert ExperimentConfig.model_validate(tiny_config(tmp_path)).train.max_eval_lag is None
    cfg = ExperimentConfig.model_validate(tiny_config(tmp_path, train={"max_eval_lag": 0}))
    assert cfg.train.max_eval_lag == 0
    with pytest.raises(Exception, match="max_eval_lag"):
        ExperimentConfig.model_validate(tiny_config(tmp_path, train={"max_eval_lag": -1}))


def test_training_waits_until_the_lag_is_at_most_the_limit():
    from dynamics.train.loop import wait_for_evaluation

    counts, told, slept = iter([3, 2, 2, 1, 0]), [], []
    waited = wait_for_evaluation(lambda: next(counts), 1, told.append, poll_s=0.5, sleep=slept.append)
    assert waited and told == [3] and slept == [0.5, 0.5, 0.5]  # said once; stopped at 1 <= limit
    assert next(counts) == 0  # never polled past the first count within the limit


def test_training_does_not_wait_within_the_limit_or_without_an_answer():
    from dynamics.train.loop import wait_for_evaluation

    told = []
    assert wait_for_evaluation(lambda: 0, 0, told.append, sleep=lambda s: 1 / 0) is False
    answers = iter([2, None])  # the pool stopped answering while training waited: training goes on
    assert wait_for_evaluation(lambda: next(answers), 0, told.append, sleep=lambda s: None) is True
    assert told == [2]
