"""Alert rules on stored metrics, checked as each evaluation is stored; `stop` ends training early.

A run's config names rules (`analysis.alerts`, dynamics.config.analysis.AlertRule). After the evaluator
stores one (run, step, evaluation), `check_and_fire` tests every rule on a metric of that evaluation:
  * a rule fires at most once per run: its row in the store's alert table is written once (hard link,
    as the metric store), so a re-evaluated step or a restarted evaluator never fires it twice;
  * firing writes that row (`store/alerts/<run>/rule=<slug>.parquet`: rule, metric, step, value, action),
    sends a W&B alert and a console line through the run's tracker, and for `action: stop` writes the run's
    stop request (`runs/<run>/stop_request.json`, first request wins).
Training (dynamics.train.loop) reads the stop request on rank 0 at every optimizer step and shares it with
every rank through the step's all-reduce, so all ranks save a last checkpoint at the same step and end
together (`ray.train.report` is a barrier: each worker calls it equally often); done.json records the stop.
Evaluation is asynchronous, so training stops a few steps after the checkpoint that fired the rule; the
fired checkpoint's adapter is the one to keep (done.json names its step).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from dynamics.config.analysis import AlertRule

STOP_FILE = "stop_request.json"
ALERT_SCHEMA = pa.schema([("run", pa.string()), ("rule", pa.string()), ("metric", pa.string()),
                          ("step", pa.int64()), ("value", pa.float64()), ("threshold", pa.float64()),
                          ("action", pa.string()), ("time", pa.float64())])


@dataclass
class Fired:
    run: str
    rule: str
    metric: str
    step: int
    value: float
    threshold: float
    action: str
    time: float

    def message(self) -> str:
        return f"alert: {self.rule} at step {self.step} (value {self.value:.4g}, threshold {self.threshold:.4g})" + (
            "; stopping training" if self.action == "stop" else "")


def threshold_of(rule: AlertRule, metrics: pd.DataFrame) -> float | None:
    """The value the rule compares against; rise_over_step0: step 0's upper 95% bound (or its value)."""
    if not rule.rise_over_step0:
        return rule.above if rule.above is not None else rule.below
    at0 = metrics[metrics["step"] == 0].set_index("metric")["value"]
    for name in (rule.metric + "_ci_high", rule.metric):
        if name in at0.index and pd.notna(at0[name]):
            return float(at0[name])
    return None


def meets(rule: AlertRule, value: float, threshold: float) -> bool:
    return value < threshold if rule.below is not None else value > threshold


def check(rules: list[AlertRule], metrics: pd.DataFrame, run: str, step: int) -> list[Fired]:
    """The rules that `step`'s stored values of `run` meet (`metrics`: the run's metric rows)."""
    now = metrics[metrics["step"] == step].set_index("metric")["value"]
    out = []
    for rule in rules:
        if step == 0 and rule.rise_over_step0:
            continue
        value = now.get(rule.metric)
        threshold = threshold_of(rule, metrics)
        if value is None or pd.isna(value) or threshold is None:
            continue
        if meets(rule, float(value), threshold):
            out.append(Fired(run, rule.label, rule.metric, step, float(value), threshold, rule.action, time.time()))
    return out


def record(experiment_dir: Path, fired: Fired) -> bool:
    """The alert table's row, written once per (run, rule). False if the rule had already fired."""
    from dynamics.tracking.store import _write_once

    slug = re.sub(r"[^A-Za-z0-9_.=<>-]+", "_", fired.rule).strip("_")[:120]
    path = Path(experiment_dir) / "store" / "alerts" / fired.run / f"rule={slug}.parquet"
    if path.exists():
        return False
    return _write_once(pa.Table.from_pylist([asdict(fired)], schema=ALERT_SCHEMA), path)


def request_stop(run_dir: Path, fired: Fired) -> bool:
    """Write the run's stop request once (the first rule to ask wins)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".stop-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(fired), f)
    try:
        os.link(tmp, run_dir / STOP_FILE)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def stop_request(run_dir: Path) -> dict | None:
    path = Path(run_dir) / STOP_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def check_and_fire(rules: list[AlertRule], experiment_dir: Path, run: str, step: int, evaluation: str,
                   tracker=None) -> list[Fired]:
    """After (run, step, evaluation) is stored: fire the rules on that evaluation's metrics that it meets."""
    from dynamics.tracking.store import MetricStore

    mine = [r for r in rules if r.metric.split("/", 1)[0] == evaluation]
    if not mine:
        return []
    fired = []
    for f in check(mine, MetricStore(experiment_dir).metrics(run), run, step):
        if not record(experiment_dir, f):
            continue  # fired before
        if f.action == "stop":
            request_stop(Path(experiment_dir) / "runs" / run, f)
        if tracker is not None:
            tracker.alert.remote(f"dynamics: {f.rule}", f.message(), "WARN")
            tracker.event.remote({"type": "alert", "run": run, "text": f.message()})
        fired.append(f)
    return fired


def load_alerts(experiment_dir: str | Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    files = sorted((Path(experiment_dir) / "store" / "alerts").glob("*/rule=*.parquet"))
    if not files:
        return pd.DataFrame(columns=ALERT_SCHEMA.names)
    return pa.concat_tables([pq.read_table(f, schema=ALERT_SCHEMA) for f in files]).to_pandas()


__all__ = ["check", "check_and_fire", "record", "request_stop", "stop_request", "load_alerts", "Fired",
           "STOP_FILE"]
