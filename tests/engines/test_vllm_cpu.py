"""vLLM on CPU: the per-device settings (`eval.vllm`), where the evaluator runs, and that vLLM's processes die
with the process that holds the engine (dynamics/engines/reaper.py). The real engine's agreement with
transformers is in test_vllm_engine_logic.py; the run on it in tests/orchestration/test_e2e_vllm.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from dynamics.config import ExperimentConfig
from dynamics.engines.vllm import vllm_environment
from dynamics.orchestration.evaluator import evaluator_options
from tests.conftest import REPO


def _cfg(**eval_):
    return ExperimentConfig.model_validate({"output_dir": "/tmp/x", "eval": {"engine": "vllm", "evals": ["logprob"],
                                                                            "judge": {"kind": "none"}, **eval_}})


def test_device_follows_the_evaluators_gpus_and_places_the_actor():
    cpu = _cfg()
    assert cpu.eval.vllm.resolved_device(cpu.eval.num_gpus) == "cpu"
    assert evaluator_options(cpu)["num_gpus"] == 0  # on CPU the actor must not wait for GPUs that do not exist
    gpu = _cfg(num_gpus=2, tensor_parallel_size=2)
    assert gpu.eval.vllm.resolved_device(2) == "cuda" and evaluator_options(gpu)["num_gpus"] == 2
    forced = _cfg(vllm={"device": "cuda"}, tensor_parallel_size=4)
    assert evaluator_options(forced)["num_gpus"] == 4


def test_tensor_parallelism_on_cpu_is_refused_at_load():
    with pytest.raises(ValueError, match="tensor_parallel_size: 2 needs GPUs"):
        _cfg(tensor_parallel_size=2)
    with pytest.raises(ValueError, match="kv_cache_gib"):
        _cfg(vllm={"kv_cache_gib": 0})


def test_environment_per_device(monkeypatch):
    monkeypatch.delenv("VLLM_LOGGING_LEVEL", raising=False)
    cpu = vllm_environment("cpu", threads=3, kv_cache_gib=1.5, thread_bind="nobind")
    assert cpu == {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1.5",
                   "VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "3", "VLLM_LOGGING_LEVEL": "WARNING"}
    gpu = vllm_environment("cuda", threads=3)
    assert gpu == {"VLLM_ENABLE_V1_MULTIPROCESSING": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    assert vllm_environment("cpu", None, multiprocessing=True)["VLLM_ENABLE_V1_MULTIPROCESSING"] == "1"
    monkeypatch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")  # the user's choice wins
    assert vllm_environment("cpu", None)["VLLM_LOGGING_LEVEL"] == "DEBUG"


PARENT = r'''
import subprocess, sys, time
from dynamics.engines.reaper import reap_with_parent
child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                          "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"])
time.sleep(1.0)
import psutil
kids = [child.pid] + [c.pid for c in psutil.Process(child.pid).children(recursive=True)]
watchdog = reap_with_parent([child.pid])
print("PIDS", *kids, watchdog.pid, flush=True)
time.sleep(600)
'''


def test_children_die_when_their_parent_is_killed():
    """The reaper: a parent (standing in for a Ray evaluator) with a child and a grandchild (vLLM's engine
    core and a worker) is SIGKILLed; both are gone within seconds, and so is the watchdog."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        line = parent.stdout.readline()
        assert line.startswith("PIDS"), line
        *kids, watchdog = [int(p) for p in line.split()[1:]]
        assert len(kids) == 2 and all(psutil.pid_exists(p) for p in kids)
        time.sleep(1.0)
        assert all(psutil.pid_exists(p) for p in kids)  # alive while the parent is
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(p) for p in [*kids, watchdog]):
            time.sleep(0.2)
        assert not any(_alive(p) for p in [*kids, watchdog])
    finally:
        for p in psutil.Process().children(recursive=True):
            p.kill()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
