"""A run killed mid-training (driver, workers, evaluator and all) resumes from its latest checkpoint
without losing or duplicating a metric row."""

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
from dynamics.train.checkpoint import CHECKPOINT_META, checkpoint_dir_name, checkpoint_root
from tests.conftest import REPO, tiny_config

pytestmark = pytest.mark.e2e


def cli(config_path, timeout=600, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "dynamics.cli", "run", str(config_path)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


def test_killed_run_resumes_without_duplicates(tmp_path):
    data = tiny_config(tmp_path, train={"max_steps": 6, "checkpoint_every": 2})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    cfg = ExperimentConfig.model_validate(data)
    first = cli(path)
    target = checkpoint_root(cfg) / checkpoint_dir_name(2) / CHECKPOINT_META
    deadline = time.monotonic() + 400
    while not target.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert target.exists(), first.communicate()[0] if first.poll() is not None else "no checkpoint 2 in time"
    time.sleep(1.0)
    os.killpg(first.pid, signal.SIGKILL)  # the driver, its local Ray cluster, workers and evaluator
    first.wait()
    store = MetricStore(cfg.experiment_dir)
    assert not store.has(cfg.run_id, 6, "train")

    second = cli(path)
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out
    assert "resuming at step" in out, out
    df = store.metrics(cfg.run_id)
    assert not df.duplicated(["run", "step", "metric"]).any()
    loss = df[df.metric == "train/loss"]
    assert list(loss.step) == [1, 2, 3, 4, 5, 6]
    assert sorted(set(df[df.source == "eval"].step)) == [0, 2, 4, 6]
    assert "Traceback" not in out and "PlacementGroupCleaner" not in out
