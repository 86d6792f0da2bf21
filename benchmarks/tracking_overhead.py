"""What tracking costs a training run, with evaluation off: the trainer's tracking work replayed alone.

    python benchmarks/tracking_overhead.py                         # the quickstart: 30 steps, ckpt every 10
    python benchmarks/tracking_overhead.py --train-seconds 240 --steps 30 --checkpoint-every 10

Everything rank 0 of the training loop does for tracking (`dynamics/train/loop.py`), with the real
pieces on a local Ray cluster: the run's tracker actor (`start_tracker`, W&B as configured: offline in the
quickstart), per optimizer step the actor look-up plus the fire-and-forget `log_train` and `event` calls
and the stop-file check, and per checkpoint the metric store write of the steps since the last one and
the `checkpoint` event. The training itself (forward, backward, the optimizer, DeepSpeed's checkpoint
save) is left out: tracking off means exactly that work and nothing else.

Reported: `critical_path_seconds` (time the training loop spends in those calls: what tracking adds to
training wall time), `tracker_seconds` (until the tracker actor has handled every call, W&B writes
included: it runs beside training on num_cpus=0, so on a busy machine it competes for CPU), and both as
a share of `--train-seconds` (the training wall time with tracking on; default: the quickstart's fit()
with evaluation off, measured in benchmarks/README.md).

With `--real-runs`, also real training runs through `run_experiment` (evaluation off), alternating
tracking on (as the config says: the tracker actor, W&B, the metric store) and tracking off (W&B disabled,
and in every Ray worker a `worker_process_setup_hook` that makes the trainer's tracker calls, its metric
store write and its stop-file check no-ops), `--pairs` times each in on/off then off/on order, each run
on a fresh local Ray cluster. Reported: fit() wall time per run and the on/off difference as a share of
the off time. On a shared 2-core box the step times of two identical runs differ by a few percent, so the
replay above is the finer measure and the real runs are its check.

Prints one JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _bench import REPO, absolute_data_dir, finish, json_stdout, log, machine


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=REPO / "jobs/configs/quickstart.yaml")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--train-seconds", type=float, default=240.0,
                   help="training wall time the overhead is a share of (quickstart fit(), eval off)")
    p.add_argument("--real-runs", action="store_true", help="also real runs, tracking on vs off (eval off)")
    p.add_argument("--pairs", type=int, default=1, help="real runs: on/off pairs (each pair runs both orders)")
    p.add_argument("overrides", nargs="*")
    return p.parse_args(argv)


def no_tracking() -> None:
    """Ray worker setup hook: the trainer does no tracking (tracker calls, store write, stop-file check)."""
    from dynamics.tracking.store import MetricStore
    from dynamics.train import loop

    loop.Trainer._tracker = lambda self, method, *args: None
    loop.Trainer._stop_requested = lambda self: False
    MetricStore.write = lambda self, *args, **kwargs: None


def real_run(args, tracking: bool, out_dir: str, k: int) -> dict:
    import ray

    from dynamics.config import load_config
    from dynamics.orchestration.run import run_experiment
    from dynamics.tracking.store import MetricStore

    name = f"tracking-{'on' if tracking else 'off'}-{k}"
    cfg = load_config(args.config, [f"output_dir={out_dir}", "eval.enabled=false", f"name={name}",
                                    f"train.max_steps={args.steps}", f"train.checkpoint_every={args.checkpoint_every}",
                                    *args.overrides] + ([] if tracking else ["wandb.enabled=false"]))
    absolute_data_dir(cfg)
    ray.shutdown()
    ray.init(address="local", num_cpus=8, include_dashboard=False, log_to_driver=False,
             runtime_env=None if tracking else {"worker_process_setup_hook": no_tracking})
    try:
        outcome = run_experiment(cfg, quiet=True)
    finally:
        ray.shutdown()
    stored = MetricStore(cfg.resolved().experiment_dir).metrics(cfg.run_id)
    train_rows = int((stored.source == "train").sum()) if len(stored) else 0  # 0: the hook ran in the workers
    log(f"{name}: fit {outcome.train_seconds:.1f}s, {train_rows} train rows stored")
    return {"tracking": tracking, "fit_seconds": outcome.train_seconds, "total_seconds": outcome.total_seconds,
            "train_rows_stored": train_rows}


def real_runs(args) -> dict:
    out_dir = tempfile.mkdtemp(prefix="dynamics-tracking-real-")
    runs = []
    try:
        for k in range(args.pairs):
            for tracking in (True, False, False, True):
                runs.append(real_run(args, tracking, out_dir, len(runs)))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    on = [r["fit_seconds"] for r in runs if r["tracking"]]
    off = [r["fit_seconds"] for r in runs if not r["tracking"]]
    mean_on, mean_off = sum(on) / len(on), sum(off) / len(off)
    return {"runs": runs, "fit_seconds_on_mean": mean_on, "fit_seconds_off_mean": mean_off,
            "share_of_training": (mean_on - mean_off) / mean_off}


def replay(cfg, links: dict, steps: int, every: int) -> float:
    """The training loop's rank-0 tracking calls; returns the seconds they took."""
    from dynamics.analysis.alerts import STOP_FILE
    from dynamics.orchestration.names import find_actor
    from dynamics.orchestration.run import run_info
    from dynamics.records import MetricRow
    from dynamics.tracking.store import MetricStore

    info, spent, pending = run_info(cfg), 0.0, []
    for step in range(1, steps + 1):
        row = {"train/step": step, "train/loss": 1.0 / step, "train/lr": 2e-4, "train/grad_norm": 0.5,
               "train/tokens": 900, "train/epoch": 0, "train/step_seconds": 8.0}
        t = time.perf_counter()
        (cfg.run_dir / STOP_FILE).is_file()  # the alert rules' stop request
        pending.append(row)
        for method, arg in (("log_train", [row]), ("event", {"run": cfg.run_id, "type": "train_step", **row})):
            actor = find_actor(links["tracker"])
            getattr(actor, method).remote(arg)
        if step % every == 0 or step == steps:
            rows = [MetricRow.make(info, r["train/step"], k, v) for r in pending for k, v in r.items() if k != "train/step"]
            MetricStore(cfg.experiment_dir).write(info, step, "train", rows)
            find_actor(links["tracker"]).event.remote({"run": cfg.run_id, "type": "checkpoint", "step": step})
            pending = []
        spent += time.perf_counter() - t
    return spent


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start, facts = time.perf_counter(), machine()
    import ray

    from dynamics.config import load_config
    from dynamics.orchestration.names import tracker_name
    from dynamics.orchestration.run import ensure_ray
    from dynamics.orchestration.tracker import start_tracker

    out_dir = tempfile.mkdtemp(prefix="dynamics-tracking-")
    try:
        cfg = load_config(args.config, [f"output_dir={out_dir}", "eval.enabled=false", "name=tracking-overhead",
                                        *args.overrides])
        absolute_data_dir(cfg)
        ensure_ray()
        t = time.perf_counter()
        tracker = start_tracker(cfg)
        ray.get(tracker.poll_events.remote())
        start_seconds = time.perf_counter() - t
        log(f"tracker up in {start_seconds:.1f}s (W&B {cfg.wandb.mode})")
        t = time.perf_counter()
        critical = replay(cfg, {"tracker": tracker_name(cfg.run_id)}, args.steps, args.checkpoint_every)
        ray.get(tracker.poll_events.remote())  # queued behind every fire-and-forget call above
        handled = time.perf_counter() - t
        t = time.perf_counter()
        ray.get(tracker.finish.remote())
        finish_seconds = time.perf_counter() - t
        ray.kill(tracker)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    result = {
        "benchmark": "tracking_overhead",
        "setup": {"config": str(args.config), "steps": args.steps, "checkpoint_every": args.checkpoint_every,
                  "wandb": {"enabled": cfg.wandb.enabled, "mode": cfg.wandb.mode}, "train_seconds": args.train_seconds},
        "tracker_start_seconds": start_seconds,
        "critical_path_seconds": critical,
        "critical_path_per_step_ms": 1000 * critical / args.steps,
        "tracker_seconds": handled,
        "wandb_finish_seconds": finish_seconds,
        "share_of_training_critical_path": critical / args.train_seconds,
        "share_of_training_with_tracker": handled / args.train_seconds,
    }
    if args.real_runs:
        result["real_runs"] = real_runs(args)
    return finish(result, facts, t_start)


if __name__ == "__main__":
    with json_stdout() as emit:
        emit(main())
