"""A damaged (truncated) store file is named by path, the rest still reads, and its key is computed again."""

from dynamics.cli import main
from dynamics.records import MetricRow, RunInfo
from dynamics.tracking.store import MetricStore

INFO = RunInfo("exp", "exp-d-s0", "d", 0, "m")


def _store_with_three_steps(tmp_path):
    s = MetricStore(tmp_path / "exp")
    for step in (0, 2, 4):
        s.write(INFO, step, "eval", [MetricRow.make(INFO, step, "main/rate", step / 10, 8)], evaluation="main")
    damaged = s.root / "metrics" / INFO.run_id / "step=000002.eval=main.parquet"
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])  # truncated on disk
    return s, damaged


def test_damaged_file_is_named_and_the_rest_reads(tmp_path, capsys):
    s, damaged = _store_with_three_steps(tmp_path)
    found: list = []
    df = s.metrics(damaged=found)
    assert sorted(df["step"]) == [0, 4]
    assert [p for p, _ in found] == [damaged]
    rc = main(["metrics", str(tmp_path / "exp")])
    out, err = capsys.readouterr()
    assert rc == 1
    assert out.splitlines()[0].startswith("run,") and len(out.splitlines()) == 3  # header + steps 0 and 4
    assert str(damaged) in err and "damaged store file" in err


def test_damaged_key_counts_as_missing_and_is_written_again(tmp_path):
    s, damaged = _store_with_three_steps(tmp_path)
    assert not s.has(INFO.run_id, 2, "eval", "main")
    assert s.evaluations(INFO.run_id) == {0: {"main"}, 4: {"main"}}  # what a relaunch's sync re-queues
    assert s.write(INFO, 2, "eval", [MetricRow.make(INFO, 2, "main/rate", 0.2, 8)], evaluation="main")
    assert sorted(s.metrics()["step"]) == [0, 2, 4]
    kept = list(damaged.parent.glob(damaged.name + ".damaged-*"))
    assert len(kept) == 1  # kept beside it for inspection, never read
    assert not s.write(INFO, 2, "eval", [MetricRow.make(INFO, 2, "main/rate", 0.9, 8)], evaluation="main")
