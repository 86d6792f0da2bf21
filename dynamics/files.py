"""Files that readers never see half-written: write beside the target, then rename (or link) into place.

A temporary file in the target's own folder is on the same filesystem, so `os.replace` (overwrite) and
`os.link` (write once: fails if the target exists) are atomic; the temporary file is removed whatever
happens.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def temp_beside(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A fresh, empty temporary file in `path`'s folder (created if needed), removed on exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: str | Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) in one step: a reader sees the old content or the new, never a part."""
    with temp_beside(path, Path(path).suffix) as tmp:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def sha256_of(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
