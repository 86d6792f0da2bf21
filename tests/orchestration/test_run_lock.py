"""A second driver of the same run is refused while the first holds the run's lock; the lock dies with
its owner (kill -9 included), so nothing is ever cleaned up by hand."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from dynamics.cli import main
from dynamics.orchestration.runlock import RunLocked, run_lock
from tests.conftest import tiny_config

HOLD = """
import sys, time
from dynamics.orchestration.runlock import run_lock
with run_lock(sys.argv[1], "r"):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(run_dir):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_driver_is_refused_until_the_first_dies(tmp_path):
    p = _holder(tmp_path / "run")
    try:
        with pytest.raises(RunLocked, match=rf"run r2 is already running \(pid {p.pid} on "):
            with run_lock(tmp_path / "run", "r2"):
                pass
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    with run_lock(tmp_path / "run", "r2"):  # the kernel released it with its owner
        pass


def test_cli_refuses_a_run_already_running(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "results" / "t" / "runs" / "t-quickstart-insecure-s0"
    p = _holder(run_dir)
    try:
        t0 = time.perf_counter()
        assert main(["run", str(path)]) == 2
        assert time.perf_counter() - t0 < 30
        err = capsys.readouterr().err
        assert "already running" in err and str(run_dir / "run.lock") in err
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
