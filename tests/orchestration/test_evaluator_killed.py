"""An evaluator killed (kill -9) in the middle of a checkpoint is replaced: that checkpoint is evaluated
again, once, before the later ones, and the run has no error."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from dynamics.config import ExperimentConfig
from dynamics.orchestration.evaluator import get_pool
from dynamics.orchestration.run import prepare_models, run_info
from dynamics.tracking.store import MetricStore
from tests.conftest import tiny_config

pytestmark = pytest.mark.e2e

STEPS = [(0, None), (2, None), (4, None)]  # the base model stands in for three checkpoints: no training


def _evaluating_pid(timeout: float = 180.0) -> int:
    """The Evaluator worker process while it runs `evaluate` (Ray titles it `ray::Evaluator.evaluate`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in psutil.process_iter(["pid", "cmdline"]):
            if any("ray::Evaluator.evaluate" in part for part in (p.info["cmdline"] or [])):
                return p.info["pid"]
        time.sleep(0.05)
    raise AssertionError("no evaluator started evaluating")


def test_killed_evaluator_is_replaced_and_its_checkpoint_evaluated_once_in_order(ray_local, tmp_path, data_dir):
    ray = ray_local
    cfg = prepare_models(ExperimentConfig.model_validate(tiny_config(tmp_path, name="evkill")))
    run, cfg_dict = run_info(cfg).as_dict(), cfg.model_dump(mode="json")
    pool = get_pool(cfg)
    ray.get(pool.sync_run.remote(run, None, cfg_dict, checkpoints=STEPS))
    os.kill(_evaluating_pid(), signal.SIGKILL)  # mid-evaluation of step 0
    done = ray.get(pool.wait_run.remote(run, None, cfg_dict, checkpoints=STEPS, timeout=600))
    assert done["errors"] == [] and done["pending"] == []  # today: "evaluator died: ... restarting"
    assert done["evaluated"] == [0, 2, 4]
    files = sorted((MetricStore(cfg.experiment_dir).root / "metrics" / cfg.run_id).glob("step=*.parquet"),
                   key=lambda f: f.stat().st_mtime)
    assert [f.name for f in files] == [f"step={s:06d}.eval=logprob.parquet" for s, _ in STEPS]  # once each, in order
    rows = MetricStore(cfg.experiment_dir).metrics(cfg.run_id)
    assert not rows.duplicated(["step", "metric"]).any()
    ray.kill(pool)
