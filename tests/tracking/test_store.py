import threading

import pyarrow.parquet as pq

from dynamics.records import EvalRecord, MetricRow, RunInfo
from dynamics.tracking.store import MetricStore, load_metrics

INFO = RunInfo("exp", "exp-d-s0", "d", 0, "m")


def rows(step, value):
    return [MetricRow.make(INFO, step, "a/b", value, 8), MetricRow.make(INFO, step, "a/c", None)]


def test_write_once_per_key(tmp_path):
    s = MetricStore(tmp_path)
    assert s.write(INFO, 10, "eval", rows(10, 0.5), [EvalRecord("a", "i1", {"x": 1})], evaluation="main")
    assert not s.write(INFO, 10, "eval", rows(10, 0.9), evaluation="main")  # never overwritten
    df = s.metrics()
    assert list(df["value"].dropna()) == [0.5] and len(df) == 2
    assert s.has("exp-d-s0", 10, "eval", "main") and s.steps("exp-d-s0", "eval", "main") == [10]
    rec = s.records()
    assert list(rec["item_id"]) == ["i1"] and rec["data"][0] == '{"x": 1}'


def test_concurrent_writers_store_one_result(tmp_path):
    s = MetricStore(tmp_path)
    results = []
    threads = [threading.Thread(target=lambda v=v: results.append(s.write(INFO, 20, "eval", rows(20, v), evaluation="main")))
               for v in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results.count(True) == 1
    assert len(s.metrics()) == 2
    assert not list((tmp_path / "store" / "metrics" / INFO.run_id).glob(".tmp-*"))


def test_load_metrics_finds_experiments(tmp_path):
    MetricStore(tmp_path / "e1").write(INFO, 0, "eval", rows(0, 0.1), evaluation="main")
    MetricStore(tmp_path / "e2").write(INFO, 0, "eval", rows(0, 0.2), evaluation="main")
    assert len(load_metrics(tmp_path)) == 4
    assert len(load_metrics(tmp_path / "e1")) == 2
    f = next((tmp_path / "e1" / "store" / "metrics").rglob("*.parquet"))
    assert pq.read_table(f).column_names[:8] == ["run", "experiment", "dataset", "seed", "model", "step", "metric", "value"]
