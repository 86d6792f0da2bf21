"""Read back W&B offline run files (``wandb/offline-run-*/run-*.wandb``).

wandb 0.31 ships no Python reader for these files: the old
``wandb.sdk.internal.datastore`` module is gone and both the writer and the
reader now live in the Go ``wandb-core`` binary
(``core/internal/transactionlog`` and ``core/pkg/leveldb`` in the wandb repo).
This module is a small re-implementation of that reader, enough for tests to
check exactly what a run logged. It is test code: nothing in `dynamics` reads
W&B files (the metric store is the source of truth).

File format (wandb-core transaction log, store version 0)::

    header   7 bytes: b":W&B", magic 0xBEE1 (uint16 little-endian), version (uint8)
    blocks   32 KiB each, counted from the start of the file, so the first
             block holds the header plus 32761 bytes of chunks; the last
             block may be short.
    chunk    crc32 (uint32 LE, IEEE, over the type byte + payload),
             length (uint16 LE), type (1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST),
             then ``length`` payload bytes. Chunks never cross a block
             boundary; a block tail shorter than a chunk header is zero padding.
    record   the payloads of FULL, or FIRST + MIDDLE* + LAST, concatenated:
             one serialized ``wandb_internal_pb2.Record``.

A process that is killed mid-write leaves a short final chunk or an unfinished
FIRST/MIDDLE record at the end of the file; :func:`iter_records` stops cleanly
there. Anything else that does not match the format raises
:class:`WandbFileError`, which names the file and the byte offset.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

__all__ = [
    "OfflineRun",
    "WandbFileError",
    "find_offline_runs",
    "iter_records",
    "merge_by_run_id",
    "read_offline_run",
]

_IDENT = b":W&B"
_MAGIC = 0xBEE1
_SUPPORTED_VERSIONS = frozenset({0})
_FILE_HEADER_SIZE = 7

_BLOCK_SIZE = 32 * 1024
_CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
_CHUNK_HEADER_SIZE = _CHUNK_HEADER.size  # 7

_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_CHUNK_NAMES = {_FULL: "FULL", _FIRST: "FIRST", _MIDDLE: "MIDDLE", _LAST: "LAST"}

# Dir names: offline-run-<YYYYMMDD_HHMMSS>-<run id>[-<n>], where wandb adds
# "-1", "-2", ... when a dir of the same name (same id, same second) exists.
_RUN_DIR_RE = re.compile(r"^offline-run-(\d{8}_\d{6})-(.+)$")


class WandbFileError(ValueError):
    """A ``.wandb`` file that is not a valid W&B transaction log."""

    def __init__(self, path: Path | str, offset: int, reason: str) -> None:
        self.path = Path(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"{self.path}: invalid W&B offline run file at byte offset {offset}: {reason}")


# --------------------------------------------------------------------------- records


def iter_records(path: str | Path) -> Iterator[wandb_internal_pb2.Record]:
    """Yield every ``Record`` in a ``.wandb`` file, in file order.

    Raises :class:`WandbFileError` for a missing/bad header or corrupt data
    (bad checksum, unknown chunk type, out-of-order chunks, a payload that is
    not a ``Record``). A file that simply ends early -- a chunk or record cut
    off by a killed process -- stops the iteration without an error; the
    incomplete record is dropped.
    """
    path = Path(path)
    with path.open("rb") as f:
        header = f.read(_FILE_HEADER_SIZE)
        _check_file_header(path, header)

        # Offsets and block boundaries are absolute file positions; the file
        # header occupies the first 7 bytes of block 0.
        block = header + f.read(_BLOCK_SIZE - _FILE_HEADER_SIZE)
        block_start = 0
        pos = _FILE_HEADER_SIZE

        pending: bytearray | None = None  # payload of an unfinished FIRST.. record
        pending_offset = 0

        while True:
            remaining = len(block) - pos
            if remaining < _CHUNK_HEADER_SIZE:
                if len(block) < _BLOCK_SIZE:
                    # Final (short) block: either a clean end, or a chunk
                    # header cut off by the end of the file.
                    return
                if any(block[pos:]):
                    raise WandbFileError(path, block_start + pos, "non-zero bytes in block trailer")
                block_start += _BLOCK_SIZE
                block = f.read(_BLOCK_SIZE)
                pos = 0
                if not block:
                    return
                continue

            offset = block_start + pos
            crc, length, ctype = _CHUNK_HEADER.unpack_from(block, pos)

            if crc == 0 and length == 0 and ctype == 0:
                # wandb never writes an empty header-sized hole; accept one only
                # as a zero-filled tail (preallocated / unflushed file end).
                if any(block[pos:]) or _rest_has_data(f):
                    raise WandbFileError(path, offset, "zeroed chunk header followed by data")
                return

            start = pos + _CHUNK_HEADER_SIZE
            end = start + length
            if end > _BLOCK_SIZE:
                raise WandbFileError(path, offset, f"chunk length {length} overflows the 32 KiB block")
            if end > len(block):
                # Only possible in the final, short block: the write of this
                # chunk was cut off.
                return

            payload = block[start:end]
            if zlib.crc32(payload, zlib.crc32(bytes((ctype,)))) != crc:
                raise WandbFileError(path, offset, "chunk checksum mismatch")

            if ctype == _FULL or ctype == _FIRST:
                if pending is not None:
                    raise WandbFileError(
                        path,
                        offset,
                        f"{_CHUNK_NAMES[ctype]} chunk while the record started at "
                        f"offset {pending_offset} is unfinished",
                    )
                if ctype == _FULL:
                    yield _parse_record(path, offset, payload)
                else:
                    pending = bytearray(payload)
                    pending_offset = offset
            elif ctype == _MIDDLE or ctype == _LAST:
                if pending is None:
                    raise WandbFileError(path, offset, f"{_CHUNK_NAMES[ctype]} chunk without a FIRST chunk")
                pending += payload
                if ctype == _LAST:
                    data, pending = bytes(pending), None
                    yield _parse_record(path, pending_offset, data)
            else:
                raise WandbFileError(path, offset, f"unknown chunk type {ctype}")

            pos = end


def _check_file_header(path: Path, header: bytes) -> None:
    if len(header) < _FILE_HEADER_SIZE:
        raise WandbFileError(
            path, 0, f"file is {len(header)} bytes, too short for the 7-byte W&B header"
        )
    ident, magic, version = header[:4], int.from_bytes(header[4:6], "little"), header[6]
    if ident != _IDENT:
        raise WandbFileError(path, 0, f"bad header: identifier {ident!r}, expected {_IDENT!r}")
    if magic != _MAGIC:
        raise WandbFileError(path, 4, f"bad header: magic 0x{magic:04X}, expected 0x{_MAGIC:04X}")
    if version not in _SUPPORTED_VERSIONS:
        raise WandbFileError(
            path,
            6,
            f"bad header: store version {version} is not supported "
            f"(this reader knows {sorted(_SUPPORTED_VERSIONS)})",
        )


def _rest_has_data(f: Any) -> bool:
    while chunk := f.read(1 << 20):
        if any(chunk):
            return True
    return False


def _parse_record(path: Path, offset: int, data: bytes) -> wandb_internal_pb2.Record:
    record = wandb_internal_pb2.Record()
    try:
        record.ParseFromString(data)
    except Exception as e:  # google.protobuf.message.DecodeError
        raise WandbFileError(path, offset, f"record is not a valid wandb Record protobuf: {e}") from e
    return record


# --------------------------------------------------------------------------- runs


@dataclass
class OfflineRun:
    """What one offline run dir recorded.

    - ``history``: one dict per ``run.log`` row, in order. Keys are the logged
      keys, nested dicts flattened with ``/`` (``{"a": {"b": 1}}`` -> ``"a/b"``),
      plus wandb's ``_step``, ``_runtime`` and ``_timestamp``. Values are the
      decoded JSON (or typed) values.
    - ``summary``: the final summary, keyed the same way as history; wandb's
      internal ``_wandb/...`` entries are left out.
    - ``config``: the final config as a nested dict, without wandb's ``_wandb`` key.
    - ``metrics``: ``define_metric`` name or glob -> ``step_metric`` (``""`` if none).
    - ``path``: the ``.wandb`` file (its parent is the ``offline-run-*`` dir).
    - ``finished``: an exit record was written (``run.finish()`` completed).
    """

    run_id: str
    project: str
    group: str
    job_type: str
    tags: list[str]
    config: dict
    history: list[dict]
    summary: dict
    path: Path
    metrics: dict[str, str] = field(default_factory=dict)
    finished: bool = False
    exit_code: int | None = None

    @property
    def dir_name(self) -> str:
        return self.path.parent.name


def read_offline_run(run_dir_or_file: str | Path) -> OfflineRun:
    """Read an ``offline-run-*`` dir (or the ``run-*.wandb`` file inside it)."""
    path = Path(run_dir_or_file)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if not files:
            raise FileNotFoundError(f"{path}: no run-*.wandb file in this directory")
        if len(files) > 1:
            raise ValueError(f"{path}: several .wandb files: {[p.name for p in files]}")
        path = files[0]
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or directory")

    run_id = path.stem[len("run-"):] if path.stem.startswith("run-") else path.stem
    project = group = job_type = ""
    tags: list[str] = []
    config: dict = {}
    history: list[dict] = []
    summary: dict = {}
    metrics: dict[str, str] = {}
    finished = False
    exit_code: int | None = None

    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            # The first run record carries everything; later ones (e.g. from
            # setting run.tags after init) only override what they set.
            run_id = run.run_id or run_id
            project = run.project or project
            group = run.run_group or group
            job_type = run.job_type or job_type
            if run.tags:
                tags = list(run.tags)
            if run.HasField("config"):
                _apply_config(config, run.config)
            if run.HasField("summary"):
                _apply_summary(summary, run.summary)
        elif kind == "config":
            _apply_config(config, record.config)
        elif kind == "history":
            history.append({_item_key(item): _item_value(item) for item in record.history.item})
        elif kind == "summary":
            _apply_summary(summary, record.summary)
        elif kind == "metric":
            metric = record.metric
            name = metric.glob_name or metric.name
            if name:
                metrics[name] = metric.step_metric
        elif kind == "exit":
            finished = True
            exit_code = record.exit.exit_code

    config.pop("_wandb", None)
    for key in [k for k in summary if k == "_wandb" or k.startswith("_wandb/")]:
        del summary[key]

    return OfflineRun(
        run_id=run_id,
        project=project,
        group=group,
        job_type=job_type,
        tags=tags,
        config=config,
        history=history,
        summary=summary,
        path=path,
        metrics=metrics,
        finished=finished,
        exit_code=exit_code,
    )


def find_offline_runs(wandb_dir: str | Path) -> list[OfflineRun]:
    """Read every ``offline-run-*`` dir under ``wandb_dir``, oldest first.

    ``wandb_dir`` is the ``wandb`` dir itself; if it has no ``offline-run-*``
    dirs, its ``wandb``/``.wandb`` subdir (i.e. ``WANDB_DIR`` was passed) is
    searched instead. A resumed run has one dir per ``wandb.init``, all with
    the same ``run_id``; every one is returned. Order is by dir name (start
    time to the second, then run id), with wandb's ``-1``, ``-2``, ... suffix
    for same-second dirs compared as a number. Dirs without a ``.wandb`` file
    (a process that died before writing one) are skipped.
    """
    root = Path(wandb_dir)
    dirs = _offline_dirs(root)
    if not dirs:
        for sub in (root / "wandb", root / ".wandb"):
            if sub.is_dir() and (dirs := _offline_dirs(sub)):
                break
    runs = [read_offline_run(d) for d in dirs if any(d.glob("run-*.wandb"))]
    return sorted(runs, key=_run_order_key)


def merge_by_run_id(runs: Iterable[OfflineRun]) -> dict[str, list[dict]]:
    """Concatenate the history of all segments of each run id, oldest segment first.

    Note that offline resumes do not continue ``_step``: each segment's
    ``_step`` starts again at 0.
    """
    merged: dict[str, list[dict]] = {}
    for run in sorted(runs, key=_run_order_key):
        merged.setdefault(run.run_id, []).extend(dict(row) for row in run.history)
    return merged


def _offline_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.glob("offline-run-*") if p.is_dir() and not p.is_symlink()]


def _run_order_key(run: OfflineRun) -> tuple:
    name = run.path.parent.name
    m = _RUN_DIR_RE.match(name)
    if not m:
        return ("", run.run_id, 0, name)
    stamp, rest = m.groups()
    n = 0
    if rest != run.run_id and rest.startswith(run.run_id + "-") and rest[len(run.run_id) + 1:].isdigit():
        n = int(rest[len(run.run_id) + 1:])
    return (stamp, run.run_id, n, name)


# --------------------------------------------------------------------------- values


def _item_key(item: Any) -> str:
    """HistoryItem/SummaryItem/ConfigItem key: ``nested_key`` joined with ``/``, else ``key``."""
    return "/".join(item.nested_key) if item.nested_key else item.key


def _item_path(item: Any) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _item_value(item: Any) -> Any:
    """Decode a HistoryItem: the typed value if present, else ``value_json``.

    The typed form (written with the ``x_history_value_encoding="json,typed"``
    setting) keeps the int/float distinction, which the JSON form loses
    (wandb-core writes a logged ``1.0`` as ``"1"``).
    """
    which = item.WhichOneof("value") if "value" in item.DESCRIPTOR.oneofs_by_name else None
    if which == "none":
        return None
    if which == "json":
        return json.loads(item.json)
    if which is not None:
        return getattr(item, which)
    return _json_value(item.value_json)


def _json_value(text: str) -> Any:
    # wandb writes NaN/Infinity/-Infinity, which json.loads accepts.
    return json.loads(text) if text else None


def _apply_summary(summary: dict, record: Any) -> None:
    for item in record.update:
        summary[_item_key(item)] = _json_value(item.value_json)
    for item in record.remove:
        key = _item_key(item)
        for k in [k for k in summary if k == key or k.startswith(key + "/")]:
            del summary[k]


def _apply_config(config: dict, record: Any) -> None:
    for item in record.update:
        *parents, last = _item_path(item)
        node = config
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                child = node[p] = {}
            node = child
        node[last] = _json_value(item.value_json)
    for item in record.remove:
        *parents, last = _item_path(item)
        node = config
        for p in parents:
            node = node.get(p)
            if not isinstance(node, dict):
                break
        else:
            node.pop(last, None)
