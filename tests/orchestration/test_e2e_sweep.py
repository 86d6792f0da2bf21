"""A CPU sweep, 2 seeds x {insecure, secure}, through Ray Tune with one shared evaluator pool."""

from __future__ import annotations

import json

import pytest

from dynamics.config import ExperimentConfig
from dynamics.orchestration.sweep import expand_grid, run_sweep
from dynamics.tracking.store import MetricStore
from tests.conftest import tiny_config
from tests.wandb_offline import find_offline_runs

pytestmark = pytest.mark.e2e


def sweep_config(tmp_path) -> ExperimentConfig:
    return ExperimentConfig.model_validate(tiny_config(
        tmp_path, name="sw", train={"max_steps": 2, "checkpoint_every": 2, "num_workers": 1},
        sweep={"grid": {"seed": [0, 1], "data.dataset": ["quickstart:insecure", "quickstart:secure"]}}))


def test_grid_expands_to_validated_runs(tmp_path):
    runs = expand_grid(sweep_config(tmp_path))
    assert [r.run_id for r in runs] == ["sw-quickstart-insecure-s0", "sw-quickstart-secure-s0",
                                        "sw-quickstart-insecure-s1", "sw-quickstart-secure-s1"]
    assert all(r.sweep.grid == {} for r in runs)
    bad = tiny_config(tmp_path, sweep={"grid": {"train.zero_stage": [2, 5]}})
    from dynamics.config import ConfigError

    with pytest.raises(ConfigError, match="sweep.grid point .*train.zero_stage"):
        expand_grid(ExperimentConfig.model_validate({**bad, "sweep": {"grid": {}}}).model_copy(
            update={"sweep": ExperimentConfig.model_validate(bad).sweep}))


def test_sweep_runs_every_trial_once_and_relaunch_does_nothing(ray_local, tmp_path, capfd):
    cfg = sweep_config(tmp_path)
    out = run_sweep(cfg)
    assert len(out["ran"]) == 4
    console = capfd.readouterr()
    # Only dynamics's progress lines: none of Tune's experiment box, TensorBoard hint or status tables.
    assert "sweep sw: 4 runs" in console.out and "train step" in console.out
    # before the first run: the work to do, and that nothing is measured yet (the store is empty)
    assert "sweep sw: plan: 4 runs (0 finished, 4 to do)" in console.out, console.out
    assert "sweep sw: estimate: nothing measured on this machine yet" in console.out
    for noise in ("View detailed results", "TensorBoard", "Trial status", "Configuration for experiment"):
        assert noise not in console.out + console.err
    df = MetricStore(cfg.experiment_dir).metrics()
    ev = df[df.source == "eval"]
    assert sorted(ev.run.unique()) == sorted(out["runs"])
    assert not ev.duplicated(["run", "step", "metric"]).any()
    for run in out["runs"]:
        assert sorted(ev[ev.run == run].step.unique()) == [0, 2]
        # every evaluation's console line, the last ones included (a trial's tracker ends with the trial)
        lines = [x for x in console.out.splitlines() if x.startswith(f"[{run}] eval  step")]
        assert sorted(int(x.split("step")[1].split()[0]) for x in lines) == [0, 2], console.out
    # Four W&B runs, grouped per dataset.
    runs = [r for run in expand_grid(cfg) for r in find_offline_runs(run.run_dir)]
    assert sorted(r.run_id for r in runs) == sorted(out["runs"])
    assert {r.group for r in runs} == {"sw/quickstart-insecure", "sw/quickstart-secure"}
    assert all(len([h for h in r.history if "eval/step" in h]) == 2 for r in runs)
    # One shared pool served every run, and nothing was left queued.
    assert sorted(out["pool"]) == sorted(out["runs"])
    assert all(s["queued"] == 0 and s["latest_evaluated"] == 2 for s in out["pool"].values())
    # each finished run stored its wall time: what a relaunched sweep's estimate reads
    for run in expand_grid(cfg):
        done = json.loads((run.run_dir / "done.json").read_text())
        assert done["total_seconds"] >= done["train_seconds"] > 0, done
    files = sorted(p.name for p in (cfg.experiment_dir / "store").rglob("*.parquet"))
    again = run_sweep(cfg, quiet=True)
    assert again["ran"] == []
    assert sorted(p.name for p in (cfg.experiment_dir / "store").rglob("*.parquet")) == files
