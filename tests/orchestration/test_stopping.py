"""A command stopped by the operating system (a full disk) or by Ctrl-C ends with one line a user can act on
(issue 22 items 1-2: a full disk gave a ~60-line traceback and no `error:` line; Ctrl-C printed nothing)."""

from __future__ import annotations

import errno
import os

import pytest

from dynamics.cli import main
from dynamics.orchestration.stopping import interrupted_line, os_error_line, os_error_of, write_traceback
from dynamics.train.checkpoint import checkpoint_dir_name, write_manifest, write_meta


def _enospc() -> OSError:
    """A real ENOSPC: /dev/full refuses every write with it."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    try:
        with open("/dev/full", "w") as f:
            f.write("x")
            f.flush()
    except OSError as e:
        return e
    raise AssertionError("/dev/full accepted a write")


def test_enospc_behind_a_wrapping_error_gives_one_line_with_what_to_do(tmp_path):
    try:
        try:
            raise _enospc()
        except OSError as e:
            raise RuntimeError("Training failed due to worker errors") from e  # what Ray Train raises
    except RuntimeError as wrapped:
        err = os_error_of(wrapped)
        assert err == (errno.ENOSPC, "No space left on device", None)
        log = write_traceback(tmp_path / "errors.log", wrapped)
        line = os_error_line(err, tmp_path / "results" / "x", log)
    assert line.startswith(f"error: No space left on device (errno 28) at {tmp_path}/results/x: free space")
    assert "run the same command: it resumes from the latest complete checkpoint" in line
    assert line.endswith(f"full traceback in {tmp_path / 'errors.log'}") and "\n" not in line
    assert "Traceback" in (tmp_path / "errors.log").read_text()


def test_an_error_that_kept_only_its_text_is_recognised():
    """pyarrow's copy into storage, crossing Ray's process boundary, keeps `[errno 28]` in its message only."""
    e = RuntimeError("Error writing bytes to file. Detail: [errno 28] No space left on device")
    assert os_error_of(e) == (28, "No space left on device", None)
    assert os_error_of(RuntimeError("a bug, not the OS")) is None


def test_a_traceback_that_cannot_be_written_where_asked_goes_to_the_temporary_folder(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    log = write_traceback(blocked / "errors.log", ValueError("x"))  # a folder that cannot exist
    assert log is not None and log.parent != blocked and "ValueError" in log.read_text()
    log.unlink()


def test_the_interrupted_line_says_what_is_stored_and_how_to_go_on(tmp_path):
    root = tmp_path / "exp" / "ray" / "run"
    for step in (0, 2, 4):
        d = root / checkpoint_dir_name(step)
        (d / "adapter").mkdir(parents=True)
        (d / "adapter" / "adapter_config.json").write_text("{}")
        write_meta(d, step, "run", total_steps=6, world=1)
        write_manifest(d, 0)
    (root / checkpoint_dir_name(4) / "manifest-rank0.json").unlink()  # cut short by Ctrl-C: not counted
    line = interrupted_line("run", [tmp_path / "exp"])
    assert line == (f"interrupted: 2 complete checkpoint(s) (latest step 2) and 0 evaluation result(s) stored in "
                    f"{tmp_path / 'exp'}; run the same `dynamics run` command to go on from there (nothing is redone)")


def test_a_bug_still_shows_its_traceback(tmp_path, monkeypatch):
    """Only the OS's refusals become one line: any other exception propagates as before."""
    import dynamics.cli as cli

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_metrics", broken)
    with pytest.raises(ZeroDivisionError):
        main(["metrics", str(tmp_path)])


def test_dynamics_own_failure_keeps_its_message_beside_the_errno_line(tmp_path, capsys):
    """An evaluation that failed on a missing file: the user sees which evaluation failed, not only the errno."""
    import argparse

    from dynamics.cli import _os_error

    args = argparse.Namespace(cmd="evaluate", log_file=tmp_path / "errors.log", stored_in=[tmp_path])
    e = RuntimeError("run r: evaluation 'json' failed for step 3: FileNotFoundError: [Errno 2] No such file "
                     "or directory: '/x/questions.yaml'")
    assert _os_error(args, e) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: run r: evaluation 'json' failed for step 3: FileNotFoundError: [Errno 2] No such file " \
                     "or directory: '/x/questions.yaml'"
    assert err[1].startswith("error: No such file or directory (errno 2) at /x/questions.yaml")


def test_a_library_caller_keeps_its_ctrl_c(monkeypatch):
    """Only the `dynamics` command turns a second Ctrl-C into a quiet exit; a notebook kernel keeps its own."""
    import signal

    from dynamics.orchestration import stopping

    before = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(stopping, "_IN_CLI", False)
    stopping.ignore_further_interrupts()
    assert signal.getsignal(signal.SIGINT) is before
    monkeypatch.setattr(stopping, "_IN_CLI", True)
    try:
        stopping.ignore_further_interrupts()
        assert signal.getsignal(signal.SIGINT) is not before
    finally:
        signal.signal(signal.SIGINT, before)
