"""`ray job submit` of a tiny run to a local head started with `ray start --head`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dynamics.config import ExperimentConfig
from dynamics.tracking.store import MetricStore
from tests.conftest import REPO, tiny_config

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    ray_bin = str(Path(sys.executable).parent / "ray")
    gcs, dash = free_port(), free_port()
    # Every port the head opens is a free one: another Ray on the machine must not collide with it.
    ports = [f"--{name}={free_port()}" for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
        "metrics-export-port", "ray-client-server-port", "node-manager-port", "object-manager-port")]
    # Ray >= 2.59 turns token authentication on for local clusters: head and client both use the token
    # in ~/.ray/auth_token (generated if absent).
    # As a user with the venv activated: `python` in the job's entrypoint is the venv's.
    env = {**os.environ, "RAY_AUTH_MODE": "token",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    subprocess.run([ray_bin, "get-auth-token", "--generate"], capture_output=True, env=env, check=True)
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", f"--port={gcs}", "--num-cpus=4", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--disable-usage-stats", *ports],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    address = f"http://127.0.0.1:{dash}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ok = subprocess.run([ray_bin, "job", "list", "--address", address], capture_output=True, env=env)
        if ok.returncode == 0:
            break
        time.sleep(2)
    else:
        os.killpg(head.pid, signal.SIGKILL)
        pytest.fail("the local Ray head did not come up")
    yield ray_bin, address, env
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)


def submit(ray_head, *args) -> subprocess.CompletedProcess:
    ray_bin, address, env = ray_head
    for attempt in range(20):  # the head's job agent can come up a little after its HTTP server
        res = subprocess.run(
            [ray_bin, "job", "submit", "--address", address, "--working-dir", str(REPO),
             "--runtime-env", str(REPO / "jobs" / "runtime_env.yaml"), "--", "python", "jobs/run.py", *args],
            capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
        if "No available agent" not in res.stdout + res.stderr:
            break
        time.sleep(3)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "succeeded" in (res.stdout + res.stderr)
    return res


def test_ray_job_submit_runs_a_tiny_job(ray_head, tmp_path):
    data = tiny_config(tmp_path, name="job", train={"max_steps": 2, "checkpoint_every": 2})
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(data))
    # The working dir travels to the cluster; the config is passed by absolute path (same machine).
    submit(ray_head, str(tmp_path / "job.yaml"))
    cfg = ExperimentConfig.model_validate(data)
    df = MetricStore(cfg.experiment_dir).metrics(cfg.run_id)
    assert sorted(set(df[df.source == "eval"].step)) == [0, 2]


def test_ray_job_submit_runs_a_sweep_and_a_relaunch_adds_nothing(ray_head, tmp_path):
    from dynamics.orchestration.sweep import expand_grid

    data = tiny_config(tmp_path, name="jobsweep", train={"max_steps": 2, "checkpoint_every": 2, "num_workers": 1},
                       sweep={"grid": {"seed": [0, 1]}})  # two trials: the 2 x 2 grid is test_e2e_sweep's
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(data))
    submit(ray_head, "--sweep", str(tmp_path / "sweep.yaml"))
    cfg = ExperimentConfig.model_validate(data)
    runs = [r.run_id for r in expand_grid(cfg)]
    ev = MetricStore(cfg.experiment_dir).metrics()
    ev = ev[ev.source == "eval"]
    assert sorted(ev.run.unique()) == sorted(runs)
    assert not ev.duplicated(["run", "step", "metric"]).any()
    assert all(sorted(ev[ev.run == r].step.unique()) == [0, 2] for r in runs)
    files = sorted(p.name for p in (cfg.experiment_dir / "store").rglob("*.parquet"))
    res = submit(ray_head, "--sweep", str(tmp_path / "sweep.yaml"))
    assert len(runs) == 2 and "2 runs (2 already finished)" in res.stdout
    assert sorted(p.name for p in (cfg.experiment_dir / "store").rglob("*.parquet")) == files
