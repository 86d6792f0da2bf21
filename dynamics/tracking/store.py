"""The metric store on disk: the source of truth (W&B is a view of it).

Layout under an experiment directory:
    store/metrics/<run>/step=000010.<source>.parquet   one row per (run, step, metric)
    store/records/<run>/step=000010.<source>.parquet   the raw records those metrics came from
`source` is `train` (the training scalars of the steps since the previous checkpoint) or `eval` (every
metric family of one checkpoint). A file is written once: to a temp name, then hard-linked into place,
which fails if the key exists, so concurrent or repeated writers never duplicate or overwrite a result.
Records are written before metrics, so a metrics file present means the checkpoint's results are complete.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dynamics.files import temp_beside
from dynamics.records import EvalRecord, MetricRow, RunInfo

METRIC_SCHEMA = pa.schema([
    ("run", pa.string()), ("experiment", pa.string()), ("dataset", pa.string()), ("seed", pa.int64()),
    ("model", pa.string()), ("step", pa.int64()), ("metric", pa.string()), ("value", pa.float64()),
    ("n", pa.int64()), ("source", pa.string()),
])
RECORD_SCHEMA = pa.schema([
    ("run", pa.string()), ("experiment", pa.string()), ("dataset", pa.string()), ("seed", pa.int64()),
    ("model", pa.string()), ("step", pa.int64()), ("family", pa.string()), ("item_id", pa.string()),
    ("data", pa.string()),
])
METRIC_COLUMNS = [f.name for f in METRIC_SCHEMA]


class MetricStore:
    def __init__(self, experiment_dir: str | Path):
        self.root = Path(experiment_dir) / "store"

    def _path(self, kind: str, run: str, step: int, source: str) -> Path:
        return self.root / kind / run / f"step={step:06d}.{source}.parquet"

    def has(self, run: str, step: int, source: str) -> bool:
        return self._path("metrics", run, step, source).exists()

    def steps(self, run: str, source: str) -> list[int]:
        d = self.root / "metrics" / run
        if not d.is_dir():
            return []
        suffix = f".{source}.parquet"
        return sorted(int(p.name[5:11]) for p in d.iterdir() if p.name.endswith(suffix))

    def write(self, run: RunInfo, step: int, source: str, rows: list[MetricRow],
              records: list[EvalRecord] = ()) -> bool:
        """Write one (run, step, source) once. Returns False (and writes nothing) if it exists."""
        if self.has(run.run_id, step, source):
            return False
        for r in rows:
            if r.run != run.run_id:
                raise ValueError(f"row of run {r.run!r} written under run {run.run_id!r}")
        if records:
            rec_table = pa.Table.from_pylist([rec.to_row(run, step) for rec in records], schema=RECORD_SCHEMA)
            _write_once(rec_table, self._path("records", run.run_id, step, source))
        metric_table = pa.Table.from_pylist([{**asdict(r), "source": source} for r in rows], schema=METRIC_SCHEMA)
        return _write_once(metric_table, self._path("metrics", run.run_id, step, source))

    def metrics(self, run: str | None = None):
        """All metric rows as a pandas DataFrame (sorted by run, step, metric)."""
        return _read_all(self.root / "metrics", run, METRIC_SCHEMA, ["run", "step", "metric"])

    def records(self, run: str | None = None):
        return _read_all(self.root / "records", run, RECORD_SCHEMA, ["run", "step", "family", "item_id"])


def _write_once(table: pa.Table, path: Path) -> bool:
    with temp_beside(path, ".parquet") as tmp:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if the key was written meanwhile
        except FileExistsError:
            return False
    return True


def _read_all(root: Path, run: str | None, schema: pa.Schema, sort: list[str]):
    import pandas as pd

    dirs = [root / run] if run else (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
    files = [f for d in dirs if d.is_dir() for f in sorted(d.glob("step=*.parquet"))]
    if not files:
        return pd.DataFrame({f.name: pd.Series(dtype=_pd_dtype(f.type)) for f in schema})
    table = pa.concat_tables([pq.read_table(f, schema=schema) for f in files])
    return table.to_pandas().sort_values(sort, kind="stable").reset_index(drop=True)


def _pd_dtype(t: pa.DataType) -> str:
    return "Int64" if pa.types.is_integer(t) else ("float64" if pa.types.is_floating(t) else "object")


def find_stores(results_dir: str | Path) -> list[MetricStore]:
    """Every experiment store under a results dir (an experiment dir or a folder of them)."""
    root = Path(results_dir)
    if (root / "store").is_dir():
        return [MetricStore(root)]
    return [MetricStore(p.parent) for p in sorted(root.glob("*/store")) if p.is_dir()]


def load_metrics(results_dir: str | Path):
    import pandas as pd

    stores = find_stores(results_dir)
    if not stores:
        raise FileNotFoundError(f"{results_dir}: no metric store (expected <experiment>/store/)")
    return pd.concat([s.metrics() for s in stores], ignore_index=True)
