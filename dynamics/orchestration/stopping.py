"""How a command ends when it cannot go on: Ctrl-C, or the operating system refusing a file (a full disk,
a permission). One line a user can act on (what is stored, what to do), never a traceback on the console;
the traceback goes to a log file beside the results.

Ctrl-C is safe at any moment because nothing is stored half-written: the metric store writes each file
once, atomically; a checkpoint counts only when every file its manifests list is whole
(`dynamics.train.checkpoint`). So the same command, started again, resumes from what is there.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import time
import traceback
from pathlib import Path

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


def stored_summary(experiment_dirs: list[Path]) -> str:
    """`N complete checkpoint(s) (latest step S) and M evaluation result(s) stored in DIR` per experiment."""
    from dynamics.tracking.store import MetricStore
    from dynamics.train.checkpoint import list_checkpoints, storage_path

    parts = []
    for exp in experiment_dirs:
        exp = Path(exp)
        runs = sorted(p for p in storage_path(exp).glob("*") if p.is_dir())
        ckpts = [s for r in runs for s, _ in list_checkpoints(r)]
        try:
            df = MetricStore(exp).metrics()
            evals = df[df["source"] == "eval"][["run", "step", "evaluation"]].drop_duplicates()
            n_eval = len(evals)
        except Exception:  # noqa: BLE001  (a summary line must not fail the exit)
            n_eval = 0
        latest = f" (latest step {max(ckpts)})" if ckpts and len(runs) == 1 else ""
        parts.append(f"{len(ckpts)} complete checkpoint(s){latest} and {n_eval} evaluation result(s) stored in {exp}")
    return "; ".join(parts)


def interrupted_line(command: str, experiment_dirs: list[Path]) -> str:
    if not experiment_dirs:  # before its config was read: nothing of this command is stored
        return f"interrupted before it started; run the same `dynamics {command}` command again"
    return (f"interrupted: {stored_summary(experiment_dirs)}; run the same `dynamics {command}` command to go on "
            "from there (nothing is redone)")


_IN_CLI = False  # set by the `dynamics` command: a library caller (a notebook, a test) keeps its Ctrl-C


def running_the_cli() -> None:
    global _IN_CLI
    _IN_CLI = True


def ignore_further_interrupts() -> None:
    """In the `dynamics` command: a second Ctrl-C while the first one is being handled, or one while the
    process shuts Ray down after its work, ends the process at once, quietly (exit 130): never a traceback
    from inside Ray's shutdown. Elsewhere (a notebook kernel) nothing changes: its Ctrl-C stays its own."""
    if not _IN_CLI:
        return
    def leave(*_) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(INTERRUPTED_EXIT)

    try:
        signal.signal(signal.SIGINT, leave)
    except ValueError:  # not the main thread
        pass


_ERRNO_TEXT = re.compile(r"\[[Ee]rrno (\d+)\] ([^:'\n]+)(?:: '([^'\n]+)')?")


def os_error_of(exc: BaseException) -> tuple[int, str, str | None] | None:
    """(errno, message, path) of the OSError behind `exc`: its causes, Ray's wrapped worker errors, or
    its text (an error that crossed a process boundary may keep only that). None when there is none."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None and e.errno not in (errno.EINTR,):
            return e.errno, os.strerror(e.errno), e.filename
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
        todo += list((getattr(e, "worker_failures", None) or {}).values())
    for e in [exc, *[x for x in (exc.__cause__, exc.__context__) if x is not None]]:
        m = _ERRNO_TEXT.search(str(e))
        if m:
            return int(m.group(1)), os.strerror(int(m.group(1))), m.group(3)
    return None


def os_error_line(err: tuple[int, str, str | None], where: Path, log: Path | None) -> str:
    code, text, path = err
    place = path or str(where)
    if code == errno.ENOSPC or code == errno.EDQUOT:
        todo = (f"free space on the filesystem of {place} (or set output_dir to another one), then run the same "
                "command: it resumes from the latest complete checkpoint")
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        todo = f"make {place} writable (or set output_dir elsewhere), then run the same command"
    else:
        todo = f"check {place} (mount, space, permissions), then run the same command"
    return f"error: {text} (errno {code}) at {place}: {todo}" + (f"; full traceback in {log}" if log else "")


def write_traceback(log: Path | None, exc: BaseException) -> Path | None:
    """Append `exc`'s traceback to `log`, or to the temporary folder when that cannot be written (its disk
    is full); returns the file written, None if neither could be."""
    import tempfile

    text = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n" + "".join(traceback.format_exception(exc))
    for path in ([log] if log else []) + [Path(tempfile.gettempdir()) / f"dynamics-error-{os.getpid()}.log"]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.write(text)
            return path
        except OSError:
            continue
    return None
