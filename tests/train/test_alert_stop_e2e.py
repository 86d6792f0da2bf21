"""A tiny real run whose alert rule fires and stops training: all workers stop at one step, cleanly.

The rule `adapter/norm > 0` fires at the first checkpoint after step 0 (the LoRA update starts at zero);
the evaluator writes the stop request, rank 0 sees it at its next step and every rank saves a last
checkpoint there and ends; done.json records the stop, the store's alert table and W&B's file the alert.
"""

from __future__ import annotations

import json

import pytest

from dynamics.analysis.alerts import load_alerts
from dynamics.config import ExperimentConfig
from dynamics.orchestration.run import run_experiment
from dynamics.train.checkpoint import checkpoint_root, list_checkpoints
from dynamics.tracking.store import MetricStore
from tests.wandb_offline import iter_records
from tests.conftest import tiny_config

pytestmark = pytest.mark.e2e
MAX_STEPS = 400


def test_stop_rule_ends_training_at_one_step_on_every_worker(ray_local, tmp_path):
    cfg = ExperimentConfig.model_validate(tiny_config(
        tmp_path, train={"max_steps": MAX_STEPS, "checkpoint_every": 2},
        eval={"evals": ["adapter"], "judge": {"kind": "none"}},
        analysis={"alerts": [{"metric": "adapter/norm", "above": 0.0, "action": "stop"}]}))
    outcome = run_experiment(cfg, quiet=True)
    cfg = cfg.resolved()
    done = json.loads((cfg.run_dir / "done.json").read_text())
    stopped = done["stopped"]
    assert stopped["rule"] == "adapter/norm > 0" and stopped["step"] == 2  # fired by the first trained checkpoint
    last = stopped["stopped_step"]
    assert 2 <= last < MAX_STEPS
    steps = [s for s, _ in list_checkpoints(checkpoint_root(cfg))]
    assert steps[-1] == last  # the last checkpoint is where every worker stopped (a report per worker)
    train = MetricStore(cfg.experiment_dir).metrics(cfg.run_id)
    assert train.loc[train["metric"] == "train/loss", "step"].max() == last
    assert outcome.evaluated_steps == steps  # the run still ends normally: every checkpoint evaluated
    alerts = load_alerts(cfg.experiment_dir)
    assert alerts[["rule", "step", "action"]].values.tolist() == [["adapter/norm > 0", 2, "stop"]]
    wandb_file = next(cfg.run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    recorded = [r.alert for r in iter_records(wandb_file) if r.WhichOneof("record_type") == "alert"]
    assert [a.title for a in recorded] == ["dynamics: adapter/norm > 0"]
