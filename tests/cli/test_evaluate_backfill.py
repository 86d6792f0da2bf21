"""`dynamics evaluate` backfills a finished run: a tiny run trained with `logprob` only gets `main` and
`deception_factual` on every stored checkpoint without retraining; killed midway and started again it
finishes with each (run, step, evaluation) stored once; a second run writes nothing; the W&B offline
files, read back, hold the new keys against `eval/step`. Every step runs the real CLI in its own process,
with its own local Ray cluster, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from dynamics.config import ExperimentConfig
from dynamics.tracking.store import MetricStore
from tests.wandb_offline import find_offline_runs, merge_by_run_id
from tests.conftest import REPO, tiny_config

pytestmark = pytest.mark.e2e
EVALS = "main,deception_factual"
# CPU size: 1 answer per main question, 2 per deception question of two system prompts, 4 new tokens; the
# tiny random judge puts ~1e-10 on any word or number, so the mass cut-offs are 0 (the pipeline, not science).
SIZES = ["eval.judge.kind=local", "eval.judge.local_model=self", "eval.judge.min_number_mass=0",
         "eval.evals.main.samples_per_question=1", "eval.evals.main.max_new_tokens=4",
         "eval.evals.main.bootstrap_samples=20", "eval.evals.main.batch_size=8", "eval.evals.main.coherent_threshold=0",
         "eval.evals.deception_factual.question_ids=[lie_no_sys_prompt, lie_you_may_lie]",
         "eval.evals.deception_factual.samples_per_question=2", "eval.evals.deception_factual.max_new_tokens=4",
         "eval.evals.deception_factual.min_mass=0", "eval.evals.deception_factual.bootstrap_samples=20"]


def cli(*args) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "dynamics.cli", *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def eval_files(cfg: ExperimentConfig) -> dict[str, float]:
    d = MetricStore(cfg.experiment_dir).root
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("*.parquet")}


def test_backfill_is_exactly_once_and_resumable(tmp_path):
    # logprob only, checkpoints at 0, 2, 4; one training worker (the 2-worker path has its own tests)
    data = tiny_config(tmp_path, train={"num_workers": 1, "gradient_accumulation_steps": 4})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = ExperimentConfig.model_validate(data)
    finish(cli("run", path))
    store = MetricStore(cfg.experiment_dir)
    assert store.evaluations(cfg.run_id) == {0: {"logprob"}, 2: {"logprob"}, 4: {"logprob"}}
    logprob_files = {k: v for k, v in eval_files(cfg).items() if "eval=logprob" in k}

    # 1. killed as soon as its first result is stored
    first = cli("evaluate", cfg.experiment_dir, "--evals", EVALS, *SIZES)
    deadline = time.monotonic() + 300
    while not any(k for k in store.evaluations(cfg.run_id).values() if k - {"logprob"}) \
            and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, first.communicate()[0]
    os.killpg(first.pid, signal.SIGKILL)  # the CLI and its local Ray cluster
    first.wait()
    # Ray's worker processes have their own sessions: the evaluator may finish the evaluation it is in
    # before it notices its cluster is gone (a second writer of that key would write nothing). Wait for quiet.
    partial, quiet_since = store.evaluations(cfg.run_id), time.monotonic()
    while time.monotonic() - quiet_since < 8:
        time.sleep(0.5)
        if store.evaluations(cfg.run_id) != partial:
            partial, quiet_since = store.evaluations(cfg.run_id), time.monotonic()
    assert sum(len(v) for v in partial.values()) < 9  # it did not finish

    # 2. started again: the rest, in step order, nothing twice
    out = finish(cli("evaluate", cfg.experiment_dir, "--evals", EVALS, *SIZES))
    assert store.evaluations(cfg.run_id) == {s: {"logprob", "main", "deception_factual"} for s in (0, 2, 4)}
    done = sum(len(v) - 1 for v in partial.values())
    assert f"{6 - done} new (step, evaluation) result(s)" in out, out
    steps_in_order = [int(line.split("step")[1].split()[0]) for line in out.splitlines() if "] eval  step" in line]
    assert steps_in_order == sorted(steps_in_order), out
    assert len(steps_in_order) == 6 - done, out  # one line per new result, the last ones included (issue 22)
    df = store.metrics(cfg.run_id)
    assert not df.duplicated(["run", "step", "metric"]).any()
    assert {"main/rate", "main/n_answers", "deception_factual/lie_rate", "deception_factual/share/TRUE",
            "deception_factual/lie_no_sys_prompt/lie_rate"} <= set(df.metric)
    ev = df[df.evaluation == "main"]
    assert (ev[ev.metric == "main/n_answers"].value == 8).all()
    rec = store.records(cfg.run_id)
    assert rec[rec.evaluation == "deception_factual"].groupby("step").size().to_dict() == {0: 4, 2: 4, 4: 4}
    # the training-time results were never touched
    assert {k: v for k, v in eval_files(cfg).items() if "eval=logprob" in k} == logprob_files

    # 3. again: nothing to do, nothing written
    before = eval_files(cfg)
    out = finish(cli("evaluate", cfg.experiment_dir, "--evals", EVALS, *SIZES))
    assert "0 new (step, evaluation) result(s)" in out, out
    assert eval_files(cfg) == before

    # 4. W&B: the same run id, new offline folders; merged, every new key against eval/step. A result
    # the killed process had logged may be logged again (its W&B process died with it, so it may not have
    # reached the file): at least once, never lost, always the stored value.
    runs = find_offline_runs(cfg.run_dir)
    assert {r.run_id for r in runs} == {cfg.run_id} and len(runs) >= 3
    history = merge_by_run_id(runs)[cfg.run_id]
    for name, key in (("main", "eval/main/rate"), ("deception_factual", "eval/deception_factual/n_judged")):
        rows = [h for h in history if key in h]
        steps = [h["eval/step"] for h in rows]
        assert sorted(set(steps)) == [0, 2, 4], (name, rows)
        assert all(steps.count(s) == 1 for s in (0, 2, 4) if (s, name) not in
                   {(st, n) for st, names in partial.items() for n in names}), (name, steps)
        for h in rows:
            stored = df[(df.step == h["eval/step"]) & (df.evaluation == name)]
            for metric, value in zip(stored.metric, stored.value):
                if value == value:
                    assert h[f"eval/{metric}"] == pytest.approx(value, rel=1e-6, abs=1e-9)
    assert runs[0].metrics.get("eval/*") == "eval/step"
