"""One run, top to bottom: Ray up, tracker and evaluator pool up, TorchTrainer.fit(), wait for the last
evaluation, close the W&B run. A run started again with the same config resumes from its latest
checkpoint (Ray Train V2 restores its checkpoint manager from the run's storage folder)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from dynamics.config import ExperimentConfig
from dynamics.orchestration.evaluator import get_pool, unfinished_checkpoints
from dynamics.orchestration.names import NAMESPACE, pool_name, tracker_name
from dynamics.orchestration.plan import planned_steps
from dynamics.orchestration.progress import ProgressPrinter
from dynamics.orchestration.tracker import start_tracker
from dynamics.records import RunInfo
from dynamics.train.checkpoint import checkpoint_root, storage_path


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    train_seconds: float
    total_seconds: float
    evaluated_steps: list[int]
    eval_errors: list[str]
    final_loss: float | None
    warnings: list[str] = field(default_factory=list)  # metrics judged on too few answers, ...
    # checkpoints whose evaluation was queued or running when training ended (fit() returned)
    eval_lag_at_train_end: int | None = None


LOCAL_START_ATTEMPTS = 3


def ensure_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Connect to the cluster in RAY_ADDRESS (set by `ray job submit`), else start a quiet local one."""
    if ray.is_initialized():
        return
    from dynamics.quiet import quiet_raylet_warnings

    quiet_raylet_warnings()
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    quiet = dict(namespace=NAMESPACE, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], **quiet)
        return
    # Locally we oversubscribe: 2 training workers and an evaluator share a 2-core laptop.
    cpus = max(num_cpus or 0, os.cpu_count() or 1, 4)
    # address="local": always a fresh local cluster, even where `ray start` left one to join.
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(address="local", num_cpus=cpus, num_gpus=num_gpus, include_dashboard=False, **quiet)
            return
        except Exception as e:  # Ray waits a fixed 30 s for its raylet; a saturated machine can miss that
            if "timed out during startup" not in str(e) or attempt == LOCAL_START_ATTEMPTS:
                raise
            ray.shutdown()
            print(f"local Ray cluster did not start within Ray's 30 s (machine busy?); retrying "
                  f"({attempt}/{LOCAL_START_ATTEMPTS - 1})", file=sys.stderr, flush=True)


def prepare_models(cfg: ExperimentConfig) -> ExperimentConfig:
    """Build every built-in model the run needs, here on the driver, before any trainer or evaluator starts,
    and pin the cache folder in the config, so workers and actors only load (see `dynamics.models`).
    Inside a Ray worker (a sweep trial) this only checks that the driver built them."""
    from dynamics.models import cache_dir_for, resolve_model

    cache = str(cache_dir_for(cfg.model.cache_dir))
    resolve_model(cfg.model.name, cache)
    judge = cfg.eval.judge
    if cfg.eval.enabled and judge.kind == "local" and judge.local_model != "self":
        resolve_model(judge.local_model, cache)
    if cfg.model.cache_dir == cache:
        return cfg
    data = cfg.model_dump(mode="json")
    data["model"]["cache_dir"] = cache
    return ExperimentConfig.model_validate(data)


def check_training_data(cfg: ExperimentConfig) -> str:
    """Tokenise the run's training split here on the driver, before Ray Train starts, so a dataset that
    cannot be used stops the run in seconds with its file and line (DataError); returns the summary line."""
    from dynamics.models import load_tokenizer
    from dynamics.train.data import load_training_data

    return load_training_data(cfg, load_tokenizer(cfg.model.name, cfg.model.cache_dir)).summary()


def local_resources_for(cfg: ExperimentConfig) -> int:
    return int(cfg.train.num_workers * cfg.train.cpus_per_worker + cfg.eval.num_cpus * cfg.eval.num_evaluators + 2)


def run_info(cfg: ExperimentConfig) -> RunInfo:
    return RunInfo(experiment=cfg.name, run_id=cfg.run_id, dataset=cfg.dataset_name, seed=cfg.seed,
                   model=cfg.model.name)


def scaling_config(cfg: ExperimentConfig):
    from ray.train import ScalingConfig

    t = cfg.train
    resources = {"CPU": t.cpus_per_worker, **t.worker_resources}
    if t.use_gpu:
        resources["GPU"] = 1
    return ScalingConfig(num_workers=t.num_workers, use_gpu=t.use_gpu, resources_per_worker=resources)


def make_trainer(cfg: ExperimentConfig, links: dict, callbacks: list | None = None):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from dynamics.train.loop import train_loop_per_worker

    t = cfg.train
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": cfg.model_dump(mode="json"), "links": links},
        scaling_config=scaling_config(cfg),
        torch_config=TorchConfig(backend="nccl" if t.use_gpu else "gloo"),
        run_config=RunConfig(
            name=cfg.run_id, storage_path=str(storage_path(cfg.experiment_dir)),
            failure_config=FailureConfig(max_failures=t.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=t.keep_checkpoints),
            callbacks=callbacks or None,
        ),
    )


def check_inputs(cfg: ExperimentConfig) -> list[str]:
    """Everything the run will read, checked here on the driver before Ray starts (seconds, not after
    training): the training data tokenised with its loss mask, every evaluation file resolved and parsed.
    Raises DataError (file, line, key); returns the summary lines."""
    lines = [f"data: {check_training_data(cfg)}"]
    if cfg.eval.enabled:
        from dynamics.evals.suite import check_evaluation_inputs

        lines.append("evaluations: " + "; ".join(check_evaluation_inputs(cfg)))
    return lines


def run_experiment(cfg: ExperimentConfig, printer: ProgressPrinter | None = None, quiet: bool = False,
                   callbacks: list | None = None, wait_printed: bool = False) -> RunOutcome:
    """Train one run and evaluate every checkpoint. Inside a sweep trial, `printer` is the sweep's.
    `wait_printed`: a printer elsewhere (the sweep's) polls the run's tracker; return only once it has
    acknowledged every event (the tracker ends when this returns: Ray collects it with its last handle).
    A second driver of the same run is refused (RunLocked) while this one holds the run's lock."""
    from dynamics.orchestration.runlock import run_lock

    t_start = time.perf_counter()
    cfg = cfg.resolved()
    with run_lock(cfg.run_dir, cfg.run_id):
        return _run_locked(prepare_models(cfg), printer, quiet, callbacks, t_start, wait_printed)


def _say(cfg: ExperimentConfig, quiet: bool, printer, lines: list[str]) -> None:
    if not quiet and printer is None:
        for line in lines:
            print(f"[{cfg.run_id}] {line}", flush=True)


def run_plan(cfg: ExperimentConfig) -> list[str]:
    """The evaluation work still to do (checkpoints without their results, a resumed run's included) and
    its estimate (dynamics.orchestration.plan)."""
    from dynamics.orchestration.plan import plan_lines
    from dynamics.tracking.store import MetricStore

    steps = planned_steps(cfg)
    if steps is None:
        return [f"plan: a checkpoint every {cfg.train.checkpoint_every} steps, each with: "
                + ", ".join(cfg.eval.evals) + " (the number of steps is known once training starts)"]
    stored = MetricStore(cfg.experiment_dir).evaluations(cfg.run_id)
    todo = {n: sum(1 for s in steps if n not in stored.get(s, set())) for n in cfg.eval.evals}
    return plan_lines(cfg, list(cfg.eval.evals), todo)


def _run_locked(cfg: ExperimentConfig, printer, quiet: bool, callbacks, t_start: float,
                wait_printed: bool = False) -> RunOutcome:
    from dynamics.train.checkpoint import resume_point
    from dynamics.train.extensions import prepare_extensions

    _say(cfg, quiet, printer, check_inputs(cfg))
    if cfg.eval.enabled:
        _say(cfg, quiet, printer, run_plan(cfg))
    _say(cfg, quiet, printer, prepare_extensions(cfg.train.use_gpu))
    _, skipped = resume_point(checkpoint_root(cfg))
    if skipped:
        _say(cfg, quiet, printer, ["resume: incomplete checkpoint(s) skipped: " + "; ".join(skipped)])
    ensure_ray(local_resources_for(cfg))
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "config.yaml").write_text(cfg.to_yaml())
    info = run_info(cfg)
    tracker = start_tracker(cfg)
    pool = get_pool(cfg) if cfg.eval.enabled else None
    links = {"tracker": tracker_name(cfg.run_id), "evaluator_pool": pool_name(cfg.name),
             "run_info": info.as_dict(), "checkpoint_root": str(checkpoint_root(cfg))}
    own_printer = printer is None and not quiet
    if own_printer:
        printer = ProgressPrinter({cfg.run_id: tracker}, pool=pool).__enter__()
    elif printer is not None:
        printer.add(cfg.run_id, tracker)
    try:
        t_fit = time.perf_counter()
        result = fit_interruptibly(make_trainer(cfg, links, callbacks))
        train_seconds = time.perf_counter() - t_fit
        final_loss = (result.metrics or {}).get("loss")
        evaluated, errors, warnings, lag = [], [], [], None
        if pool is not None:
            lag = unfinished_checkpoints(pool, info.as_dict(), links["checkpoint_root"])
            tracker.event.remote({"type": "message", "run": cfg.run_id,
                                  "text": "training done; waiting for the last evaluations"
                                  + (f" ({lag} checkpoint(s) not evaluated yet)" if lag is not None else "")})
            done = _wait_for_evaluation(pool, info, cfg)
            evaluated, errors, warnings = done["evaluated"], done["errors"], done.get("warnings", [])
        ray.get(tracker.finish.remote())
        if wait_printed:
            wait_until_printed(tracker)
    except KeyboardInterrupt:  # Ctrl-C: close W&B on what it has; the CLI prints what is stored
        from dynamics.orchestration.stopping import ignore_further_interrupts

        ignore_further_interrupts()
        try:
            ray.get(tracker.finish.remote(), timeout=20)
        except Exception:  # noqa: BLE001  (the store has everything; a relaunch replays it to W&B)
            pass
        raise
    finally:
        if own_printer:
            printer.__exit__(None, None, None)
    outcome = RunOutcome(cfg.run_id, cfg.run_dir, train_seconds, time.perf_counter() - t_start, evaluated, errors,
                         final_loss, warnings, lag)
    if errors:
        raise RuntimeError(f"run {cfg.run_id}: evaluation failed for " + "; ".join(errors))
    _mark_done(cfg, outcome)
    return outcome


def wait_until_printed(tracker, timeout_s: float = 120.0) -> None:
    """Wait until a printer has acknowledged every event of `tracker` (see `RunTracker.pending`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if ray.get(tracker.pending.remote(), timeout=max(1.0, deadline - time.monotonic())) == 0:
                return
        except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
            return
        time.sleep(0.2)


def fit_interruptibly(trainer):
    """`trainer.fit()` on a helper thread, so Ctrl-C reaches this (main) thread as KeyboardInterrupt.
    Called on the main thread, Ray Train installs its own SIGINT handler, which aborts the run quietly and
    leaves the process to exit 1 without a word; off the main thread (as under Ray Tune) it installs none.
    The driver's exit then ends the training workers (Ray owns them through the driver)."""
    box: dict = {}

    def fit() -> None:
        try:
            box["result"] = trainer.fit()
        except BaseException as e:  # noqa: BLE001  (re-raised on the caller's thread)
            box["error"] = e

    thread = threading.Thread(target=fit, daemon=True, name="dynamics-fit")
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    if "error" in box:
        raise box["error"]
    return box["result"]


def _mark_done(cfg: ExperimentConfig, outcome: RunOutcome) -> None:
    import json

    from dynamics.analysis.alerts import stop_request
    from dynamics.files import write_atomic
    from dynamics.train.checkpoint import list_checkpoints, read_meta

    done = {"run": cfg.run_id, "final_loss": outcome.final_loss, "evaluated": len(outcome.evaluated_steps),
            "train_seconds": outcome.train_seconds, "total_seconds": outcome.total_seconds,
            "eval_lag_at_train_end": outcome.eval_lag_at_train_end}
    if outcome.warnings:
        done["warnings"] = outcome.warnings
    request = stop_request(cfg.run_dir)
    if request is not None:  # an alert rule asked to stop: which rule, where it fired, where training ended
        last = list_checkpoints(checkpoint_root(cfg))
        step, total = (last[-1][0], read_meta(last[-1][1]).get("total_steps")) if last else (None, None)
        key = "stopped" if step is not None and total is not None and step < total else "stop_requested_after_training"
        done[key] = {**request, "stopped_step": step, "total_steps": total}
    write_atomic(cfg.run_dir / "done.json", json.dumps(done))


def _wait_for_evaluation(pool, info: RunInfo, cfg: ExperimentConfig) -> dict:
    for attempt in range(5):
        try:
            return ray.get(pool.wait_run.remote(info.as_dict(), str(checkpoint_root(cfg)), cfg.model_dump(mode="json")))
        except ray.exceptions.RayActorError:  # the pool restarted: it rescans the checkpoints on disk
            time.sleep(2)
            pool = get_pool(cfg)
    raise RuntimeError(f"run {cfg.run_id}: the evaluator pool keeps failing")

