"""Tests for tests/wandb_offline.py (the reader of W&B offline files) against files written by real wandb runs.

The runs are produced in subprocesses (a fresh interpreter per ``wandb.init``,
like a job and its restart), so no wandb service or global ``wandb.run`` leaks
into the test process and the WANDB_* environment is exactly the one below.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.wandb_offline import (
    OfflineRun,
    WandbFileError,
    find_offline_runs,
    iter_records,
    merge_by_run_id,
    read_offline_run,
)

RUN_ID = "abc123"
CONFIG = {"lr": 1e-5}
METRICS = {"train/*": "train/step", "eval/*": "eval/step"}

# First segment. eval/step goes 10 -> 5: rows are logged without `step=`, so
# wandb's own _step keeps counting 0, 1, 2, ... regardless.
ROWS_1 = [
    {"train/step": 0, "train/loss": 1.0},
    {"train/step": 1, "train/loss": 0.5},
    {"eval/step": 10, "eval/metric": 0.75},
    {"train/step": 2, "train/loss": 0.25},
    {"eval/step": 5, "eval/metric": 0.5},
    {"eval/step": 20, "eval/metric": 0.875},
]
# Resumed segment; the 100 KB string makes a record that spans four 32 KiB
# blocks (FIRST, MIDDLE, MIDDLE, LAST chunks).
BLOB = "".join(chr(ord("a") + i % 26) for i in range(100_000))
ROWS_2 = [
    {"train/step": 3, "train/loss": 0.125},
    {"eval/step": 30, "eval/metric": 0.9375, "eval/notes": BLOB},
    {"train/step": 4, "train/loss": 0.0625},
]

PRODUCER = textwrap.dedent(
    """
    import json, sys
    import wandb

    spec = json.loads(sys.stdin.read())
    run = wandb.init(
        project="p", id=spec["id"], group="g", job_type="train", tags=["x"],
        config=spec["config"], resume="allow",
    )
    for glob, step_metric in spec["metrics"].items():
        run.define_metric(glob, step_metric=step_metric)
    for row in spec["rows"]:
        run.log(row)
    run.finish()
    """
)


def _wandb_run(tmp: Path, rows: list[dict]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(tmp), WANDB_SILENT="true")
    spec = {"id": RUN_ID, "config": CONFIG, "metrics": METRICS, "rows": rows}
    proc = subprocess.run(
        [sys.executable, "-c", PRODUCER],
        input=json.dumps(spec),
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def wandb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WANDB_DIR holding two offline dirs for run `abc123`: the original and a resume."""
    tmp = tmp_path_factory.mktemp("wandb_offline")
    _wandb_run(tmp, ROWS_1)
    _wandb_run(tmp, ROWS_2)
    return tmp


@pytest.fixture(scope="module")
def segments(wandb_dir: Path) -> list[OfflineRun]:
    return find_offline_runs(wandb_dir / "wandb")


def _user_keys(row: dict) -> dict:
    """A history row without wandb's own _step/_runtime/_timestamp."""
    return {k: v for k, v in row.items() if not k.startswith("_")}


def test_reads_back_exactly_what_was_logged(segments: list[OfflineRun]) -> None:
    first = segments[0]
    assert first.run_id == RUN_ID
    assert first.project == "p"
    assert first.group == "g"
    assert first.job_type == "train"
    assert first.tags == ["x"]
    assert first.config == CONFIG
    assert first.metrics == METRICS
    assert first.finished and first.exit_code == 0
    assert first.path.name == f"run-{RUN_ID}.wandb"
    assert first.path.parent.name.startswith("offline-run-")

    assert [_user_keys(row) for row in first.history] == ROWS_1
    # wandb numbers rows itself: _step is always present and counts 0, 1, 2, ...
    assert [row["_step"] for row in first.history] == list(range(len(ROWS_1)))
    assert all({"_runtime", "_timestamp"} <= row.keys() for row in first.history)

    # The summary holds the last value of each key.
    assert first.summary["train/loss"] == 0.25
    assert first.summary["eval/step"] == 20
    assert first.summary["eval/metric"] == 0.875
    assert first.summary["_step"] == len(ROWS_1) - 1
    assert not any(k.startswith("_wandb") for k in first.summary)


def test_resume_allow_offline_writes_a_second_dir(wandb_dir: Path, segments: list[OfflineRun]) -> None:
    assert [s.run_id for s in segments] == [RUN_ID, RUN_ID]
    assert segments[0].path.parent != segments[1].path.parent
    # Passing WANDB_DIR instead of WANDB_DIR/wandb finds the same dirs.
    assert [s.path for s in find_offline_runs(wandb_dir)] == [s.path for s in segments]

    second = segments[1]
    assert (second.group, second.job_type, second.tags, second.config) == ("g", "train", ["x"], CONFIG)
    assert [_user_keys(row) for row in second.history] == ROWS_2  # includes the 100 KB string intact
    # Offline, the resumed segment does not continue the step counter.
    assert [row["_step"] for row in second.history] == list(range(len(ROWS_2)))

    merged = merge_by_run_id(segments)
    assert list(merged) == [RUN_ID]
    assert [_user_keys(row) for row in merged[RUN_ID]] == ROWS_1 + ROWS_2
    # Order comes from the dir names, not from the order passed in.
    assert merge_by_run_id(reversed(segments)) == merged


def test_read_offline_run_takes_dir_or_file(segments: list[OfflineRun]) -> None:
    first = segments[0]
    assert read_offline_run(first.path.parent) == first
    assert read_offline_run(str(first.path)) == first


def test_iter_records_yields_protobuf_records(segments: list[OfflineRun]) -> None:
    records = list(iter_records(segments[1].path))
    kinds = [r.WhichOneof("record_type") for r in records]
    assert kinds[0] == "header"
    assert kinds.count("run") == 1
    assert kinds.count("history") == len(ROWS_2)
    assert kinds.count("metric") == len(METRICS)
    assert kinds[-1] == "exit"


def _copy(src: Path, dst: Path, size: int | None = None, patch: tuple[int, bytes] | None = None) -> Path:
    data = bytearray(src.read_bytes())
    if patch is not None:
        offset, new = patch
        data[offset : offset + len(new)] = new
    dst.write_bytes(bytes(data[:size]))
    return dst


def test_truncated_file_reads_up_to_the_cut(segments: list[OfflineRun], tmp_path: Path) -> None:
    for segment in segments:
        full = segment.path.read_bytes()
        full_history = [_user_keys(r) for r in segment.history]
        cuts = {len(full) // 2, len(full) - 1, 7, 8, 20} | set(range(9, len(full), 997))
        for cut in sorted(cuts):
            cut_file = _copy(segment.path, tmp_path / f"run-{RUN_ID}.wandb", size=cut)
            run = read_offline_run(cut_file)  # must not raise
            history = [_user_keys(r) for r in run.history]
            assert history == full_history[: len(history)], cut
            assert not run.finished, cut

    # Cut in the middle of the 100 KB record (inside a MIDDLE chunk): the
    # rows before it survive, the partial record is dropped.
    second = segments[1]
    blob_offset = second.path.read_bytes().index(BLOB[:64].encode())
    cut_file = _copy(second.path, tmp_path / "cut.wandb", size=blob_offset + 50_000)
    assert [_user_keys(r) for r in read_offline_run(cut_file).history] == ROWS_2[:1]


def test_bad_header_names_the_file(segments: list[OfflineRun], tmp_path: Path) -> None:
    src = segments[0].path
    cases = {
        "ident.wandb": (None, (0, b"LVL0")),
        "magic.wandb": (None, (4, b"\x00\x00")),
        "version.wandb": (None, (6, b"\x07")),
        "short.wandb": (5, None),
        "empty.wandb": (0, None),
    }
    for name, (size, patch) in cases.items():
        bad = _copy(src, tmp_path / name, size=size, patch=patch)
        with pytest.raises(WandbFileError) as info:
            list(iter_records(bad))
        assert str(bad) in str(info.value)
        assert info.value.path == bad


def test_corrupt_chunk_names_file_and_offset(segments: list[OfflineRun], tmp_path: Path) -> None:
    src = segments[0].path
    data = src.read_bytes()
    # Flip a byte inside the payload of the record that holds "eval/metric".
    target = data.index(b"eval/metric")
    bad = _copy(src, tmp_path / "corrupt.wandb", patch=(target, bytes([data[target] ^ 0xFF])))
    with pytest.raises(WandbFileError, match="checksum") as info:
        list(iter_records(bad))
    assert str(bad) in str(info.value)
    assert 7 <= info.value.offset < target
    assert f"offset {info.value.offset}" in str(info.value)


def test_find_offline_runs_skips_dirs_without_a_wandb_file(segments: list[OfflineRun], tmp_path: Path) -> None:
    wandb_dir = tmp_path / "wandb"
    shutil.copytree(segments[0].path.parent, wandb_dir / segments[0].path.parent.name)
    (wandb_dir / "offline-run-20990101_000000-dead").mkdir()
    runs = find_offline_runs(wandb_dir)
    assert [r.run_id for r in runs] == [RUN_ID]
    assert runs[0].history == segments[0].history
