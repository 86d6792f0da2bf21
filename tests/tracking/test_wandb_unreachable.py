"""W&B trouble is a warning, never a dead tracker: online with the server unreachable (a closed local port,
short init timeout) or with a malformed key, the tracker comes up, logs offline, says how to upload later,
and the run's metrics go on."""

from __future__ import annotations

import socket

import pytest

from dynamics.config import ExperimentConfig
from dynamics.orchestration.tracker import RunTracker
from tests.conftest import tiny_config
from tests.wandb_offline import find_offline_runs


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once this returns: connections are refused


@pytest.mark.parametrize("key", ["k" * 40, "bad"], ids=["unreachable", "malformed-key"])
def test_online_trouble_falls_back_to_offline_with_a_warning(tmp_path, monkeypatch, key):
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("WANDB_API_KEY", key)
    cfg = ExperimentConfig.model_validate(tiny_config(tmp_path, wandb={"mode": "online", "init_timeout_s": 3}))
    tracker = RunTracker(cfg.model_dump(mode="json"))  # today: raises CommError / AuthenticationError
    lines = [e["text"] for e in tracker.poll_events()]
    assert len(lines) == 1 and lines[0].startswith("warning: W&B online init failed") and "wandb sync" in lines[0]
    tracker.log_train([{"train/step": 1, "train/loss": 2.5}])
    assert tracker.log_eval(0, {"main/rate": 0.25}, evaluation="main")
    tracker.finish()
    runs = find_offline_runs(cfg.run_dir / "wandb")
    assert len(runs) == 1 and str(runs[0].path.parent) in lines[0] and runs[0].finished
    history = runs[0].history
    assert [h.get("train/loss") for h in history if "train/loss" in h] == [2.5]
    assert [h["eval/main/rate"] for h in history if "eval/main/rate" in h] == [0.25]
    assert key not in "".join(p.read_text(errors="replace") for p in cfg.run_dir.rglob("*") if p.is_file()
                              and p.suffix in (".json", ".yaml", ".log", ".txt"))
