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
    ours = [parent.pid]  # only this test's processes are cleaned up: the session's Ray cluster is ours too
    try:
        line = parent.stdout.readline()
        assert line.startswith("PIDS"), line
        *kids, watchdog = [int(p) for p in line.split()[1:]]
        ours += [*kids, watchdog]
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
        for pid in ours:
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ---- merged adapters: the weights loaded into vLLM in place --------------------------------------------

def test_packed_layers_are_reloaded_whole():
    from dynamics.engines.vllm import base_weight_name, whole_layers

    assert base_weight_name("base_model.model.model.layers.3.self_attn.q_proj") == "model.layers.3.self_attn.q_proj.weight"
    have = {f"model.layers.0.{m}.weight" for m in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                     "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
    got = whole_layers({"model.layers.0.self_attn.v_proj.weight", "model.layers.0.mlp.up_proj.weight"}, have)
    assert got == have - {"model.layers.0.self_attn.o_proj.weight", "model.layers.0.mlp.down_proj.weight"}
    assert whole_layers({"model.layers.0.self_attn.o_proj.weight"}, have) == {"model.layers.0.self_attn.o_proj.weight"}
    # Qwen2: q/k/v have biases, rebuilt with their layer (a weight reloaded without its bias leaves it uninitialised)
    biases = {f"model.layers.0.self_attn.{m}.bias" for m in ("q_proj", "k_proj", "v_proj")}
    got = whole_layers({"model.layers.0.self_attn.k_proj.weight"}, have | biases)
    assert got == biases | {f"model.layers.0.self_attn.{m}.weight" for m in ("q_proj", "k_proj", "v_proj")}


def test_merged_weights_are_peft_merge(tmp_path):
    """W + scale * B A per adapted layer equals peft's own merge (merge_and_unload), rsLoRA included."""
    import torch
    from peft import LoraConfig, get_peft_model

    from dynamics.engines.vllm import BaseWeights, merged_weights
    from dynamics.models import load_model, resolve_model

    model = load_model("tiny:llama")
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, use_rslora=True, lora_dropout=0.0,
                                                  target_modules=["q_proj", "v_proj", "down_proj"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    peft_model.save_pretrained(tmp_path / "a")
    reference = peft_model.merge_and_unload().state_dict()
    merged = merged_weights(tmp_path / "a", BaseWeights(resolve_model("tiny:llama"), torch.float32))
    assert len(merged) == 2 * 3  # 2 layers x 3 modules
    for name, w in merged.items():
        assert torch.allclose(w, reference[name], atol=1e-6), name
        assert (w - BaseWeights(resolve_model("tiny:llama"), torch.float32).get(name)).abs().max() > 1e-3


@pytest.mark.parametrize("extra", [{"modules_to_save": ["score"]}, {"bias": "lora_only"}, {"use_dora": True}])
def test_merged_weights_refuse_what_is_not_b_times_a(tmp_path, extra):
    import json as _json

    import torch

    from dynamics.engines.vllm import BaseWeights, merged_weights
    from dynamics.models import resolve_model

    (tmp_path / "adapter_config.json").write_text(_json.dumps({"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"],
                                                              **extra}))
    with pytest.raises(ValueError, match="only plain LoRA updates"):
        merged_weights(tmp_path, BaseWeights(resolve_model("tiny:llama"), torch.float32))


def test_the_watchdog_never_adopts_a_reused_pid(tmp_path):
    """A pid whose start time is not the one recorded (the system gave it to another process since: pids
    wrap at 32768 here) is left alone when the watchdog's parent dies."""
    import subprocess
    import sys
    import time

    from dynamics.engines.reaper import WATCHDOG

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        parent = subprocess.Popen([sys.executable, "-c", (
            "import os, subprocess, sys, time; "
            f"subprocess.Popen([sys.executable, '-c', {WATCHDOG!r}, str(os.getpid()), '{bystander.pid}:123.0'], "
            "start_new_session=True); time.sleep(1)")])
        parent.wait(timeout=30)
        time.sleep(2)  # the watchdog polls every 0.5 s
        assert bystander.poll() is None
    finally:
        bystander.kill()
