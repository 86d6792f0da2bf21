"""The metric store on disk: the source of truth (W&B is a view of it).

Layout under an experiment directory:
    store/metrics/<run>/step=000010.train.parquet       the training scalars of the steps since the last checkpoint
    store/metrics/<run>/step=000010.eval=main.parquet   one evaluation (`main`) of one checkpoint
    store/records/<run>/step=000010.eval=main.<token>.parquet   the raw records behind those metrics
The unit of storage is (run, step, source), where source is `train` or `eval=<evaluation name>`: adding
an evaluation to a stored step writes one new file and never touches the others. One row per (run, step,
metric), with the evaluation's name in the `evaluation` column (empty for train rows).

Written once, by the filesystem: the metrics file is written to a temp name and hard-linked into place,
which fails if the key exists, so concurrent or repeated writers never duplicate or overwrite a result.
The metrics file is the commit: its records are written first, under a name unique to the writer, and the
metrics file names them (Parquet metadata `records`). A writer that loses the race deletes its records; a
writer that dies before committing leaves a records file no metrics file names, which readers never see.

A damaged metrics file (truncated or corrupt on disk: it cannot be read back) counts as missing: readers
skip it and name it (a warning on the `dynamics.tracking.store` logger, and the `damaged` list callers
pass), `has`/`evaluations` do not count it, so a relaunch or `dynamics evaluate` computes that key again,
and `write` first moves the damaged file aside (`<name>.damaged-<token>`, kept for inspection).

Old-layout stores (`step=NNNNNN.eval.parquet`, every family of a checkpoint in one file, before named
evaluations) are still read: their rows have no evaluation name and their records sit under the same name.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dynamics.files import temp_beside
from dynamics.records import EvalRecord, MetricRow, RunInfo

METRIC_SCHEMA = pa.schema([
    ("run", pa.string()), ("experiment", pa.string()), ("dataset", pa.string()), ("seed", pa.int64()),
    ("model", pa.string()), ("step", pa.int64()), ("metric", pa.string()), ("value", pa.float64()),
    ("n", pa.int64()), ("source", pa.string()), ("evaluation", pa.string()),
])
RECORD_SCHEMA = pa.schema([
    ("run", pa.string()), ("experiment", pa.string()), ("dataset", pa.string()), ("seed", pa.int64()),
    ("model", pa.string()), ("step", pa.int64()), ("family", pa.string()), ("item_id", pa.string()),
    ("data", pa.string()), ("evaluation", pa.string()),
])
METRIC_COLUMNS = [f.name for f in METRIC_SCHEMA]
log = logging.getLogger(__name__)


class MetricStore:
    def __init__(self, experiment_dir: str | Path):
        self.root = Path(experiment_dir) / "store"

    def _path(self, kind: str, run: str, step: int, source: str) -> Path:
        return self.root / kind / run / f"step={step:06d}.{source}.parquet"

    def has(self, run: str, step: int, source: str, evaluation: str | None = None) -> bool:
        """Whether the key is stored and readable (a damaged file counts as missing)."""
        return _readable(self._path("metrics", run, step, source_key(source, evaluation)))

    def steps(self, run: str, source: str, evaluation: str | None = None) -> list[int]:
        """The steps stored for `train`, or for the evaluation `evaluation`."""
        key = source_key(source, evaluation)
        return sorted(step for step, k in self._keys(run) if k == key)

    def evaluations(self, run: str) -> dict[int, set[str]]:
        """{step: the names of the evaluations stored for it}."""
        out: dict[int, set[str]] = {}
        for step, key in self._keys(run):
            if key.startswith("eval="):
                out.setdefault(step, set()).add(key[len("eval="):])
        return out

    def _keys(self, run: str) -> list[tuple[int, str]]:
        d = self.root / "metrics" / run
        if not d.is_dir():
            return []
        out = []
        for p in d.iterdir():
            m = _METRICS_FILE.fullmatch(p.name)
            if m and _readable(p):
                out.append((int(m.group(1)), m.group(2)))
        return out

    def write(self, run: RunInfo, step: int, source: str, rows: list[MetricRow], records: list[EvalRecord] = (),
              evaluation: str | None = None) -> bool:
        """Write one (run, step, source[, evaluation]) once. Returns False (and writes nothing) if it exists."""
        key = source_key(source, evaluation)
        if self.has(run.run_id, step, key):
            return False
        _move_aside_if_damaged(self._path("metrics", run.run_id, step, key))
        for r in rows:
            if r.run != run.run_id:
                raise ValueError(f"row of run {r.run!r} written under run {run.run_id!r}")
        metadata = {}
        rec_path = None
        if records:
            rec_path = self._path("records", run.run_id, step, f"{key}.{uuid.uuid4().hex[:12]}")
            rec_rows = [{**rec.to_row(run, step), "evaluation": evaluation} for rec in records]
            _write_once(pa.Table.from_pylist(rec_rows, schema=RECORD_SCHEMA), rec_path)
            metadata[b"records"] = rec_path.name.encode()
        metric_rows = [{**asdict(r), "source": source, "evaluation": evaluation} for r in rows]
        table = pa.Table.from_pylist(metric_rows, schema=METRIC_SCHEMA.with_metadata(metadata))
        written = _write_once(table, self._path("metrics", run.run_id, step, key))
        if not written and rec_path is not None:
            rec_path.unlink(missing_ok=True)  # another writer committed this key first
        return written

    def metrics(self, run: str | None = None, damaged: list | None = None):
        """All metric rows as a pandas DataFrame (sorted by run, step, metric). A file that cannot be read
        is skipped, logged and appended to `damaged` as (path, why): the rest still reads."""
        return _read_tables(self._metric_files(run), METRIC_SCHEMA, ["run", "step", "metric"], damaged)

    def records(self, run: str | None = None, damaged: list | None = None):
        """The raw records of every committed key (sorted by run, step, family, item); damaged files as in
        `metrics`."""
        files = []
        for f in self._metric_files(run):
            try:
                name = (pq.read_schema(f).metadata or {}).get(b"records")
            except Exception as e:  # noqa: BLE001 - any reader error means the file is damaged
                _report_damaged(f, e, damaged)
                continue
            rec = f.parent.parent.parent / "records" / f.parent.name / (name.decode() if name else f.name)
            if rec.is_file():
                files.append(rec)
        return _read_tables(files, RECORD_SCHEMA, ["run", "step", "family", "item_id"], damaged)

    def _metric_files(self, run: str | None) -> list[Path]:
        root = self.root / "metrics"
        dirs = [root / run] if run else (sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else [])
        return [f for d in dirs if d.is_dir() for f in sorted(d.iterdir()) if _METRICS_FILE.fullmatch(f.name)]


_METRICS_FILE = re.compile(r"step=(\d{6,})\.(train|eval|eval=[A-Za-z0-9_]+)\.parquet")
EVALUATION_NAME = re.compile(r"[A-Za-z0-9_]+")


def source_key(source: str, evaluation: str | None = None) -> str:
    """`train`, or `eval=<evaluation>` (the file-name key of one evaluation); a key passes through."""
    if source == "train" or source.startswith("eval="):
        if evaluation is not None:
            raise ValueError(f"source {source!r} takes no evaluation name (got {evaluation!r})")
        return source
    if source != "eval":
        raise ValueError(f"unknown store source {source!r}; expected 'train' or 'eval'")
    if evaluation is None:
        raise ValueError("an evaluation result is stored under its evaluation's name (evaluation=...)")
    if not EVALUATION_NAME.fullmatch(evaluation):
        raise ValueError(f"evaluation name {evaluation!r}: expected letters, digits and _ only")
    return f"eval={evaluation}"


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


def damage_of(path: Path) -> str | None:
    """Why a stored Parquet file cannot be read back (None: it reads). Files are small: read it whole."""
    try:
        pq.read_table(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        return f"{type(e).__name__}: {e}"
    return None


def _readable(path: Path) -> bool:
    try:
        return damage_of(path) is None
    except FileNotFoundError:
        return False


def _report_damaged(path: Path, error, damaged: list | None) -> None:
    why = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    log.warning("damaged store file %s (%s): skipped; a relaunch or `dynamics evaluate` computes its key again",
                path, why)
    if damaged is not None:
        damaged.append((path, why))


def _move_aside_if_damaged(path: Path) -> None:
    """Free a damaged file's name for the new result (hard links need it), keeping the file beside it."""
    try:
        why = damage_of(path)
    except FileNotFoundError:
        return
    if why is None:
        return
    try:
        os.rename(path, path.with_name(f"{path.name}.damaged-{uuid.uuid4().hex[:8]}"))
        log.warning("damaged store file %s (%s) moved aside; computing it again", path, why)
    except FileNotFoundError:  # another writer moved it first
        pass


def _read_tables(files: list[Path], schema: pa.Schema, sort: list[str], damaged: list | None = None):
    import pandas as pd

    tables = []
    for f in files:
        try:  # an old-layout file lacks the `evaluation` column: reading with the schema fills it with nulls
            tables.append(pq.read_table(f, schema=schema).replace_schema_metadata(None))
        except FileNotFoundError:  # moved aside by a writer meanwhile
            continue
        except Exception as e:  # noqa: BLE001 - one damaged file must not hide the others
            _report_damaged(f, e, damaged)
    if not tables:
        return pd.DataFrame({f.name: pd.Series(dtype=_pd_dtype(f.type)) for f in schema})
    table = pa.concat_tables(tables)
    return table.to_pandas().sort_values(sort, kind="stable").reset_index(drop=True)


def _pd_dtype(t: pa.DataType) -> str:
    return "Int64" if pa.types.is_integer(t) else ("float64" if pa.types.is_floating(t) else "object")


def find_stores(results_dir: str | Path) -> list[MetricStore]:
    """Every experiment store under a results dir (an experiment dir or a folder of them)."""
    root = Path(results_dir)
    if (root / "store").is_dir():
        return [MetricStore(root)]
    return [MetricStore(p.parent) for p in sorted(root.glob("*/store")) if p.is_dir()]


def load_metrics(results_dir: str | Path, damaged: list | None = None):
    """Every metric row under a results dir; damaged files are skipped and named (see `MetricStore.metrics`)."""
    import pandas as pd

    stores = find_stores(results_dir)
    if not stores:
        raise FileNotFoundError(f"{results_dir}: no metric store (expected <experiment>/store/)")
    return pd.concat([s.metrics(damaged=damaged) for s in stores], ignore_index=True)
