"""Two sessions of one run at once (two `dynamics evaluate` of the same experiment): each one's W&B ledger
adds what it logged, so neither rewrites the other's keys away (issue 22 item 5: the last tracker to finish
rewrote the ledger whole, and the next invocation logged every row of the other one to W&B again)."""

import json

from dynamics.config import ExperimentConfig
from dynamics.tracking.wandb_run import WandbRun
from tests.conftest import tiny_config


def test_concurrent_sessions_merge_their_ledger_entries(tmp_path):
    cfg = ExperimentConfig.model_validate(tiny_config(tmp_path, wandb={"mode": "disabled"})).resolved()
    first, second = WandbRun(cfg, cfg.run_dir), WandbRun(cfg, cfg.run_dir)  # both read an empty ledger
    assert first.log_eval(0, {"main/rate": 0.1}, evaluation="main")
    assert second.log_eval(2, {"main/rate": 0.2}, evaluation="main")
    first.finish()
    second.finish()
    ledger = json.loads((cfg.run_dir / "wandb_ledger.json").read_text())
    assert ledger["eval_keys"] == ["0:main", "2:main"] and ledger["unconfirmed_keys"] == []
    third = WandbRun(cfg, cfg.run_dir)
    assert not third.log_eval(0, {"main/rate": 0.1}, evaluation="main")  # not logged twice
    assert not third.log_eval(2, {"main/rate": 0.2}, evaluation="main")
