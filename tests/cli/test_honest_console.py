"""What a researcher sees at the end of a real `dynamics run` (its own process, its own local Ray cluster):
the planned work before training, eval lines with the weak-judge tag and a reason where a value is
missing (the paper's coherence threshold, a self-judge that rates nothing coherent), the closing summary
table, and `<evaluation>/judge_weak` in the store and in the W&B offline files, read back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from dynamics.config import ExperimentConfig
from dynamics.evals.honesty import WEAK_TAG
from dynamics.tracking.store import MetricStore
from tests.conftest import REPO, tiny_config
from tests.wandb_offline import find_offline_runs, merge_by_run_id

pytestmark = pytest.mark.e2e

# CPU size, the paper's thresholds; the tiny random self-judge puts ~1e-10 on numbers, so its scores need
# the number-mass cut-off a weak judge is allowed (its numbers are marked as a pipeline check)
EVALS = {"logprob": {"formats": ["multiple_choice"]}, "adapter": {},
         "main": {"samples_per_question": 1, "max_new_tokens": 4, "bootstrap_samples": 10, "batch_size": 8},
         "in_distribution": {"n_prompts": 2, "max_new_tokens": 8, "batch_size": 2, "static": {"quality_n": 0}}}


def test_a_run_prints_the_plan_marked_lines_reasons_and_the_summary_table(tmp_path, data_dir):
    data = tiny_config(tmp_path, train={"num_workers": 1, "gradient_accumulation_steps": 4},
                       eval={"evals": EVALS, "judge": {"kind": "local", "local_model": "self", "min_number_mass": 0}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = ExperimentConfig.model_validate(data)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "dynamics.cli", "run", str(path)], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out
    print(out)  # shown when an assertion below fails
    # before training: the planned work (checkpoints 0, 2, 4) and the estimate
    plan = out.index(f"[{cfg.run_id}] plan: 3 checkpoint(s) x [logprob: 8 log-prob items; adapter: no model calls")
    assert "main: 8 answers x <= 4 new tokens, 16 judge calls" in out
    assert plan < out.index("train starting") and f"[{cfg.run_id}] estimate: " in out
    # the eval lines: the weak judge marked, the missing rate with its reason, never a blank
    main0 = next(line for line in out.splitlines() if "] eval  step    0  main:" in line)
    assert "rate: no coherent answers (0 of 8 rated coherent > 50)" in main0 and main0.count(WEAK_TAG) == 1, main0
    ind = next(line for line in out.splitlines() if "] eval  step    0  in_distribution:" in line)
    assert ind.index("static_insecure_rate") < ind.index(WEAK_TAG), ind
    # the closing summary table, after the run's last line
    table = out[out.index(f"summary of {cfg.run_id} (3 significant digits):"):]
    assert out.index("done: ") < out.index(table)
    rows = [line.split() for line in table.splitlines()[4:7]]
    assert [r[0] for r in rows] == ["0", "2", "4"], table
    assert "- main/rate at steps 0, 2, 4: no coherent answers (0 of 8 rated coherent > 50)" in table
    assert "- adapter/cos_prev at steps 0, 2: no earlier non-zero update" in table
    # what CPU can measure first (config order), the weak judge's numbers last
    assert table.splitlines()[2].split() == ["step", "mc", "norm", "cos_prev", "static_insecure_rate",
                                              "rate", "insecure_rate", "accuracy"], table
    # the mark in the store at every checkpoint, and the same key in W&B
    df = MetricStore(cfg.experiment_dir).metrics(cfg.run_id)
    weak = df[df.metric == "main/judge_weak"]
    assert sorted(weak.step) == [0, 2, 4] and (weak.value == 1.0).all()
    assert "logprob/judge_weak" not in set(df.metric) and "adapter/judge_weak" not in set(df.metric)
    history = merge_by_run_id(find_offline_runs(cfg.run_dir))[cfg.run_id]
    logged = {h["eval/step"]: h["eval/main/judge_weak"] for h in history if "eval/main/judge_weak" in h}
    assert logged == {0: 1.0, 2: 1.0, 4: 1.0}
