"""The store keyed by (run, step, evaluation): each evaluation written once, independently of the others;
the records a metrics file commits are the only ones read; old-layout stores still read."""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynamics.records import EvalRecord, MetricRow, RunInfo
from dynamics.tracking.store import METRIC_SCHEMA, MetricStore

INFO = RunInfo("exp", "exp-d-s0", "d", 0, "m")


def rows(step, name, value):
    return [MetricRow.make(INFO, step, f"{name}/rate", value, 4)]


def test_each_evaluation_is_its_own_key(tmp_path):
    s = MetricStore(tmp_path)
    assert s.write(INFO, 10, "eval", rows(10, "main", 0.1), [EvalRecord("misalignment", "a", {"v": 1})], "main")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "store").rglob("*.parquet")}
    # adding another evaluation to the stored step writes new files and touches none of the others
    assert s.write(INFO, 10, "eval", rows(10, "json", 0.2), [EvalRecord("misalignment", "b", {"v": 2})], "json")
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "store").rglob("*.parquet")}
    assert {k: after[k] for k in before} == before and len(after) == 4
    assert not s.write(INFO, 10, "eval", rows(10, "main", 0.9), evaluation="main")
    assert s.write(INFO, 10, "train", [MetricRow.make(INFO, 10, "train/loss", 1.0)])
    assert s.evaluations(INFO.run_id) == {10: {"main", "json"}}
    assert s.steps(INFO.run_id, "eval", "json") == [10] and s.steps(INFO.run_id, "train") == [10]
    df = s.metrics()
    assert sorted(zip(df["metric"], df["evaluation"].fillna("-"))) == [
        ("json/rate", "json"), ("main/rate", "main"), ("train/loss", "-")]
    rec = s.records()
    assert sorted(zip(rec["item_id"], rec["evaluation"])) == [("a", "main"), ("b", "json")]
    with pytest.raises(ValueError, match="evaluation's name"):
        s.write(INFO, 20, "eval", rows(20, "main", 0.1))
    with pytest.raises(ValueError, match="letters, digits"):
        s.write(INFO, 20, "eval", rows(20, "main", 0.1), evaluation="../x")


def test_concurrent_writers_commit_one_result_and_its_records(tmp_path):
    s = MetricStore(tmp_path)
    results = []

    def write(v):
        results.append((v, s.write(INFO, 20, "eval", rows(20, "main", v), [EvalRecord("f", f"w{v}", {})], "main")))

    threads = [threading.Thread(target=write, args=(v,)) for v in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    winners = [v for v, ok in results if ok]
    assert len(winners) == 1
    df, rec = s.metrics(), s.records()
    # the stored value and the stored records come from the same writer; the losers left nothing behind
    assert list(df["value"]) == [winners[0]] and list(rec["item_id"]) == [f"w{winners[0]}"]
    assert len(list((tmp_path / "store" / "records").rglob("*.parquet"))) == 1
    assert not list((tmp_path / "store").rglob(".tmp-*"))


def test_uncommitted_records_are_never_read(tmp_path):
    s = MetricStore(tmp_path)
    s.write(INFO, 0, "eval", rows(0, "main", 0.5), [EvalRecord("f", "kept", {})], "main")
    # a writer that died after its records and before its metrics file
    orphan = tmp_path / "store" / "records" / INFO.run_id / "step=000010.eval=main.deadbeef0000.parquet"
    pq.write_table(pa.Table.from_pylist([{"run": INFO.run_id, "step": 10, "family": "f", "item_id": "orphan",
                                          "data": "{}"}]), orphan)
    assert list(s.records()["item_id"]) == ["kept"]
    assert s.write(INFO, 10, "eval", rows(10, "main", 0.6), [EvalRecord("f", "redo", {})], "main")
    assert list(s.records()["item_id"]) == ["kept", "redo"]


def test_old_layout_store_is_read(tmp_path):
    d = tmp_path / "store" / "metrics" / INFO.run_id
    d.mkdir(parents=True)
    old = pa.schema([f for f in METRIC_SCHEMA if f.name != "evaluation"])
    pq.write_table(pa.Table.from_pylist([{"run": INFO.run_id, "experiment": "exp", "dataset": "d", "seed": 0,
                                          "model": "m", "step": 10, "metric": "misalignment/rate", "value": 0.25,
                                          "n": 8, "source": "eval"}], schema=old), d / "step=000010.eval.parquet")
    r = tmp_path / "store" / "records" / INFO.run_id
    r.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"run": INFO.run_id, "step": 10, "family": "misalignment",
                                          "item_id": "q/0/0", "data": "{}"}]), r / "step=000010.eval.parquet")
    s = MetricStore(tmp_path)
    df = s.metrics()
    assert list(df["metric"]) == ["misalignment/rate"] and df["evaluation"].isna().all()
    assert list(s.records()["item_id"]) == ["q/0/0"]
    assert s.evaluations(INFO.run_id) == {}  # no named evaluation: `dynamics evaluate` adds them anew
