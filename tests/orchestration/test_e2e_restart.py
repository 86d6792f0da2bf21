"""A run killed mid-training (driver, workers, evaluator and all) resumes from its latest checkpoint
without losing or duplicating a metric row; so does a run stopped by Ctrl-C, which says so in one line,
exits 130, and whose relaunch never saves again a checkpoint already stored (issue 22)."""

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
from dynamics.train.checkpoint import CHECKPOINT_META, checkpoint_dir_name, checkpoint_root, list_checkpoints
from tests.conftest import REPO, tiny_config

pytestmark = pytest.mark.e2e


def cli(config_path, timeout=600, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "dynamics.cli", "run", str(config_path)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


def complete_steps(cfg) -> list[int]:
    return [s for s, _ in list_checkpoints(checkpoint_root(cfg))] or [0]


def test_killed_run_resumes_without_duplicates(tmp_path):
    # 12 steps: after the kill, workers can save a few more checkpoints (CI on 2026-12-07 saw 4 and 6 saved
    # after checkpoint 2's kill), and the relaunch still needs a checkpoint to go before the last
    data = tiny_config(tmp_path, train={"max_steps": 12, "checkpoint_every": 2})
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
    # Ray's worker processes have sessions of their own: a training worker may save one more checkpoint
    # before it notices its cluster is gone. Wait for quiet.
    steps, quiet_since = complete_steps(cfg), time.monotonic()
    while time.monotonic() - quiet_since < 8:
        time.sleep(0.5)
        if complete_steps(cfg) != steps:
            steps, quiet_since = complete_steps(cfg), time.monotonic()
    resumed = max(steps)
    assert resumed < 10, steps
    store = MetricStore(cfg.experiment_dir)
    assert not store.has(cfg.run_id, 12, "train")

    second = cli(path)  # resumes; Ctrl-C (to the process group, as a terminal sends it) after its next checkpoint
    deadline = time.monotonic() + 400
    while second.poll() is None and max(complete_steps(cfg)) <= resumed and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    latest = max(complete_steps(cfg))
    os.killpg(second.pid, signal.SIGINT)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 130, out
    assert f"resuming at step {resumed}" in out, out
    (line,) = [x for x in out.splitlines() if x.startswith("interrupted:")]
    assert f"(latest step {latest})" in line and "run the same `dynamics run` command" in line, out
    assert "Traceback" not in out, out
    saved = {d.name: (d / CHECKPOINT_META).stat().st_mtime_ns for _, d in list_checkpoints(checkpoint_root(cfg))}

    third = cli(path)
    out, _ = third.communicate(timeout=600)
    assert third.returncode == 0, out
    assert f"resuming at step {latest}" in out, out
    assert all((checkpoint_root(cfg) / name / CHECKPOINT_META).stat().st_mtime_ns == t for name, t in saved.items())
    df = store.metrics(cfg.run_id)
    assert not df.duplicated(["run", "step", "metric"]).any()
    loss = df[df.metric == "train/loss"]
    assert list(loss.step) == list(range(1, 13))
    assert sorted(set(df[df.source == "eval"].step)) == [0, 2, 4, 6, 8, 10, 12]
    assert "Traceback" not in out and "PlacementGroupCleaner" not in out
