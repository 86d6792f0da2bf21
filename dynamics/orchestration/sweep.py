"""Sweeps: the config's grid (seeds x datasets x any key) as Ray Tune trials, one TorchTrainer each.

Every trial is a Tune *function* trainable that builds and fits one run (Ray Train V2: a Trainer cannot
be passed to a Tuner). All runs land in one experiment directory, share the experiment's evaluator pool
(one per base model), and are grouped in W&B by dataset. A re-launched sweep skips the runs that
finished (their `done.json` and stored evaluations) and resumes the others from their checkpoints.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import time

import ray

from dynamics.config import ConfigError, ExperimentConfig, config_from_dict
from dynamics.orchestration.evaluator import get_pool
from dynamics.orchestration.names import tracker_name
from dynamics.orchestration.progress import ProgressPrinter
from dynamics.train.extensions import prepare_extensions
from dynamics.orchestration.run import (check_training_data, ensure_ray, fit_interruptibly, local_resources_for,
                                        prepare_models, run_experiment)


def expand_grid(cfg: ExperimentConfig) -> list[ExperimentConfig]:
    """One validated config per grid point (the cross product of the axes, in the order written)."""
    grid = cfg.sweep.grid
    if not grid:
        return [cfg]
    base = cfg.model_dump(mode="json")
    base["sweep"] = {"grid": {}, "max_concurrent_trials": None}
    axes = list(grid.items())
    out = []
    for values in itertools.product(*(v for _, v in axes)):
        overrides = [f"{k}={json.dumps(v)}" for (k, _), v in zip(axes, values)]
        try:
            out.append(config_from_dict(base, source="sweep.grid", overrides=overrides))
        except ConfigError as e:
            raise ConfigError(f"sweep.grid point {dict(zip(grid, values))}: {e}") from None
    ids = [c.run_id for c in out]
    if len(set(ids)) != len(ids):
        raise ConfigError("sweep.grid: two grid points map to the same run id (the id is experiment, dataset "
                          "and seed); vary seed or data.dataset, or give each point its own name")
    return out


def is_finished(cfg: ExperimentConfig) -> bool:
    return (cfg.run_dir / "done.json").is_file()


def max_concurrent(cfg: ExperimentConfig, trials: list[ExperimentConfig]) -> int:
    """How many runs fit at once: the cluster's CPUs (or GPUs) over one run's, minus the evaluators'."""
    if cfg.sweep.max_concurrent_trials:
        return cfg.sweep.max_concurrent_trials
    res = ray.cluster_resources()
    t, e = cfg.train, cfg.eval
    pool_cpu, pool_gpu = e.num_cpus * e.num_evaluators, e.num_gpus * e.num_evaluators
    fit = []
    cpu_per_run = t.num_workers * t.cpus_per_worker
    fit.append(math.floor((res.get("CPU", 0) - pool_cpu) / cpu_per_run) if cpu_per_run else len(trials))
    if t.use_gpu:
        fit.append(math.floor((res.get("GPU", 0) - pool_gpu) / t.num_workers))
    return max(1, min([len(trials), *fit]))


def _trial(config: dict) -> None:
    from ray import tune

    cfg = ExperimentConfig.model_validate(config["run"])
    if is_finished(cfg):
        tune.report(json.loads((cfg.run_dir / "done.json").read_text()))
        return
    callbacks = []
    try:
        from ray.tune.integration.ray_train import TuneReportCallback

        callbacks.append(TuneReportCallback())
    except ImportError:
        pass
    # with the sweep's console on, the run's tracker (which ends with this trial) stays until it has
    # handed every line to the sweep's printer
    outcome = run_experiment(cfg, quiet=True, callbacks=callbacks, wait_printed=bool(config.get("console")))
    tune.report({"final_loss": outcome.final_loss, "evaluated": len(outcome.evaluated_steps),
                 "train_seconds": outcome.train_seconds})


@contextlib.contextmanager
def _tune_console_silenced():
    """Tune's new console output prints its experiment box, a TensorBoard hint and status tables whatever
    `verbose` says; the legacy engine with verbose=0 prints none of them, so only our progress lines show."""
    before = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = before


def run_sweep(cfg: ExperimentConfig, quiet: bool = False) -> dict:
    from ray import tune

    cfg = prepare_models(cfg.resolved())
    trials = [prepare_models(t) for t in expand_grid(cfg)]  # a grid over model.name builds each here
    for t in {(t.model.name, t.data.dataset, t.data.max_examples): t for t in trials}.values():
        summary = check_training_data(t)  # every dataset of the grid, before Ray starts
        if not quiet:
            print(f"sweep {cfg.name}: data: {summary}", flush=True)
    if cfg.eval.enabled:  # every evaluation file, before Ray starts
        from dynamics.evals.suite import check_evaluation_inputs

        for t in {json.dumps([t.model_dump(mode="json")["eval"], t.data.data_dir], sort_keys=True): t
                  for t in trials}.values():
            check_evaluation_inputs(t)
    for line in prepare_extensions(cfg.train.use_gpu):  # a stale lock removed: always said
        print(f"sweep {cfg.name}: {line}", flush=True)
    ensure_ray(max(local_resources_for(cfg), 4))
    todo = [t for t in trials if not is_finished(t)]
    out = print if not quiet else (lambda *a, **k: None)
    out(f"sweep {cfg.name}: {len(trials)} runs ({len(trials) - len(todo)} already finished), results in "
        f"{cfg.experiment_dir}", flush=True)
    if not todo:
        return {"runs": [t.run_id for t in trials], "ran": [], "pool": {}}
    pool = get_pool(cfg) if cfg.eval.enabled else None
    concurrency = max_concurrent(cfg, todo)
    from dynamics.orchestration.plan import sweep_plan_lines

    for line in sweep_plan_lines(trials, todo, concurrency):  # the work still to do and how long it takes
        out(f"sweep {cfg.name}: {line}", flush=True)
    t0 = time.perf_counter()
    names = {t.run_id: tracker_name(t.run_id) for t in todo}
    printer = ProgressPrinter(names if not quiet else {}, pool=pool if not quiet else None)
    tuner = tune.Tuner(
        # The trial only drives its TorchTrainer (whose workers hold the real resources): a sliver of CPU.
        tune.with_resources(_trial, {"CPU": 0.01}),
        param_space={"run": tune.grid_search([t.model_dump(mode="json") for t in todo]), "console": not quiet},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(name="tune", storage_path=str(cfg.experiment_dir), verbose=0),
    )
    try:
        with printer, _tune_console_silenced():
            results = fit_interruptibly(tuner)  # Ctrl-C: KeyboardInterrupt here, the CLI's one line, exit 130
    except KeyboardInterrupt:  # close each live run's W&B on what it has (as `run` and `evaluate` do)
        _finish_trackers(names.values())
        raise
    pool_status = ray.get(pool.status.remote()) if pool is not None else {}
    errors = [str(r.error) for r in results if r.error]
    if errors:
        raise RuntimeError(f"sweep {cfg.name}: {len(errors)} run(s) failed: " + " | ".join(errors))
    out(f"sweep {cfg.name}: {len(todo)} runs done in {time.perf_counter() - t0:.0f} s", flush=True)
    return {"runs": [t.run_id for t in trials], "ran": [t.run_id for t in todo], "pool": pool_status}


def _finish_trackers(names, timeout_s: float = 20.0) -> None:
    """After Ctrl-C: every run tracker still alive closes its W&B run on what it logged (a second Ctrl-C
    ends the process at once, dynamics.orchestration.stopping)."""
    from dynamics.orchestration.names import find_actor
    from dynamics.orchestration.stopping import ignore_further_interrupts

    ignore_further_interrupts()
    refs = [t.finish.remote() for t in (find_actor(n) for n in names) if t is not None]
    if refs:
        ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
