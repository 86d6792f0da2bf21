"""Alert rules: when each kind fires (values worked out by hand), once per run, and the stop request."""

from __future__ import annotations

import pandas as pd
import pytest

from dynamics.analysis.alerts import check, check_and_fire, load_alerts, stop_request
from dynamics.config.analysis import AlertRule
from dynamics.config import ConfigError, config_from_dict
from dynamics.records import MetricRow, RunInfo
from dynamics.tracking.store import MetricStore

INFO = RunInfo("e", "e-insecure-s0", "insecure", 0, "m")


def _metrics(values: dict[int, dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"step": s, "metric": m, "value": v} for s, d in values.items() for m, v in d.items()])


def test_threshold_rules():
    df = _metrics({0: {"main/rate": 0.0}, 10: {"main/rate": 0.25, "adapter/cos_prev": 0.85}})
    above = AlertRule(metric="main/rate", above=0.2)
    below = AlertRule(metric="adapter/cos_prev", below=0.9, action="stop")
    fired = check([above, below], df, "r", 10)
    assert [(f.rule, f.value, f.threshold, f.action) for f in fired] == [
        ("main/rate > 0.2", 0.25, 0.2, "alert"), ("adapter/cos_prev < 0.9", 0.85, 0.9, "stop")]
    assert check([AlertRule(metric="main/rate", above=0.3)], df, "r", 10) == []
    assert check([above], df, "r", 0) == []  # 0.0 is not above 0.2


def test_rise_over_step0_uses_the_upper_bound_of_step_0():
    # step 0: rate 0.05, 95% interval up to 0.12. 0.10 is inside it (no alert); 0.15 is above it.
    df = _metrics({0: {"main/rate": 0.05, "main/rate_ci_high": 0.12}, 10: {"main/rate": 0.10},
                   20: {"main/rate": 0.15}})
    rule = AlertRule(metric="main/rate", rise_over_step0=True)
    assert check([rule], df, "r", 10) == []
    assert [f.threshold for f in check([rule], df, "r", 20)] == [0.12]
    # a metric without an interval: compared with the step-0 value itself
    df = _metrics({0: {"logprob/x": -3.0}, 10: {"logprob/x": -2.5}})
    assert [f.threshold for f in check([AlertRule(metric="logprob/x", rise_over_step0=True)], df, "r", 10)] == [-3.0]


def test_a_rule_fires_once_and_stop_writes_the_request(tmp_path):
    store = MetricStore(tmp_path)
    rule = AlertRule(metric="main/rate", above=0.2, action="stop")
    for step, rate in ((0, 0.0), (10, 0.3), (20, 0.4)):
        store.write(INFO, step, "eval", [MetricRow.make(INFO, step, "main/rate", rate, 8)], evaluation="main")
    assert check_and_fire([rule], tmp_path, INFO.run_id, 0, "main") == []
    assert check_and_fire([rule], tmp_path, INFO.run_id, 10, "logprob") == []  # not this evaluation's metric
    assert [f.step for f in check_and_fire([rule], tmp_path, INFO.run_id, 10, "main")] == [10]
    assert check_and_fire([rule], tmp_path, INFO.run_id, 20, "main") == []  # fired already
    alerts = load_alerts(tmp_path)
    assert alerts[["run", "rule", "step", "value", "action"]].values.tolist() == [
        [INFO.run_id, "main/rate > 0.2", 10, 0.3, "stop"]]
    assert stop_request(tmp_path / "runs" / INFO.run_id)["step"] == 10


def test_config_refuses_a_rule_without_exactly_one_condition():
    with pytest.raises(ConfigError, match=r"x.yaml:2: key 'analysis.alerts'.*exactly one of above, below"):
        config_from_dict({"analysis": {"alerts": [{"metric": "main/rate", "above": 0.1, "below": 0.5}]}},
                         "x.yaml", {("analysis",): 1, ("analysis", "alerts"): 2})
    cfg = config_from_dict({"analysis": {"reference_step": 30, "alerts": [{"metric": "m/x", "below": 1}]}})
    assert cfg.analysis.reference_step == 30 and cfg.analysis.alerts[0].label == "m/x < 1"
