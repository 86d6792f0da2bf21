"""Training step time, per-checkpoint evaluation latency and what evaluating alongside training costs.

    python benchmarks/train_eval.py                                   # 10 steps, checkpoint every 5, log-prob only
    python benchmarks/train_eval.py --steps 20 --checkpoint-every 10 --all-metrics
    python benchmarks/train_eval.py --config jobs/configs/quickstart.yaml train.per_device_batch_size=4

The same small run goes through `run_experiment` twice on one local Ray cluster (started once): first
with evaluation on (checkpoints evaluated by the evaluator actor while training goes on), then with
`eval.enabled=false` (W&B as configured in both). Each run has its own name (so its own evaluator pool)
and its own fresh output directory (a temp dir, removed afterwards unless --keep).

Prints one JSON line:
  step_seconds          train/step_seconds from the metric store, step 1 (warm-up) left out: median,
                        mean, min, max, per run (eval on / off) and both pooled
  eval                  seconds per checkpoint, all evaluations together (median, max, per step), and per
                        named evaluation (`<name>/eval_seconds`)
  train_seconds         TorchTrainer.fit() wall time with eval on and off, and the overhead of evaluating
                        and tracking alongside training: ratio on/off and the seconds difference
  total_seconds         run_experiment wall time per run (fit + waiting for the last evaluation);
                        outside_fit_seconds is the part outside fit()
  end_to_end_seconds    the whole script, Ray start included
  machine               cpu count, torch threads, load average at start and end
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# importing _bench first puts this checkout on sys.path and sets the offline environment
from _bench import REPO, absolute_data_dir, json_stdout, log, machine, summary


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=REPO / "jobs/configs/quickstart.yaml",
                   help="YAML to start from (default: the quickstart)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides, applied after the flags below")
    p.add_argument("--model", default="embedded:smollm2")
    p.add_argument("--dataset", default="quickstart:insecure")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--zero-stage", type=int, default=2, choices=[2, 3])
    p.add_argument("--steps", type=int, default=10, help="optimizer steps (train.max_steps)")
    p.add_argument("--checkpoint-every", type=int, default=5)
    p.add_argument("--all-metrics", action="store_true",
                   help="keep the config's metric families (default: log-prob metrics only)")
    p.add_argument("--name", default="bench", help="run names are <name>-evalon and <name>-evaloff")
    p.add_argument("--order", default="on,off", choices=["on,off", "off,on"], help="which run goes first")
    p.add_argument("--keep", action="store_true", help="keep the output dirs (their paths are reported)")
    return p.parse_args(argv)


def make_config(args, eval_on: bool, output_dir: str):
    from dynamics.config import load_config

    flags = [f"model.name={args.model}", f"data.dataset={args.dataset}", f"train.num_workers={args.workers}",
             f"train.zero_stage={args.zero_stage}", f"train.max_steps={args.steps}",
             f"train.checkpoint_every={args.checkpoint_every}"]
    if not args.all_metrics:
        flags += ["eval.evals=[logprob]"]
    forced = [f"name={args.name}-eval{'on' if eval_on else 'off'}", f"output_dir={output_dir}",
              f"eval.enabled={str(eval_on).lower()}"]
    cfg = load_config(args.config, flags + list(args.overrides) + forced)
    absolute_data_dir(cfg)
    return cfg


def _family_timing(ev, name: str) -> dict:
    rows = ev[ev.metric == f"{name}/eval_seconds"].sort_values("step")
    s = summary(rows.value)
    return {"median": s["median"], "max": s["max"],
            "by_step": {int(k): float(v) for k, v in zip(rows.step, rows.value)}}


def store_summary(cfg) -> dict:
    from dynamics.tracking.store import MetricStore

    df = MetricStore(cfg.experiment_dir).metrics(cfg.run_id)
    train = df[(df.source == "train") & (df.metric == "train/step_seconds")].sort_values("step")
    steps = {int(s): float(v) for s, v in zip(train.step, train.value)}
    out = {"steps_recorded": len(steps), "step1_seconds": steps.get(1),
           "step_seconds": summary(v for s, v in steps.items() if s != 1),
           "_step_values": [v for s, v in steps.items() if s != 1]}
    ev = df[df.source == "eval"]
    if len(ev):
        timing = ev[ev.metric.str.endswith("/eval_seconds")]
        per_step = timing.groupby("step", as_index=False)["value"].sum().sort_values("step")
        fams = sorted(timing.evaluation.dropna().unique())
        eval_seconds = summary(per_step.value)
        out["eval"] = {
            "checkpoints": [int(s) for s in per_step.step],
            "eval_seconds_median": eval_seconds["median"], "eval_seconds_max": eval_seconds["max"],
            "eval_seconds_mean": eval_seconds["mean"],
            "eval_seconds_by_step": {int(s): float(v) for s, v in zip(per_step.step, per_step.value)},
            "families": {f: _family_timing(ev, f) for f in fams},
        }
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    facts = machine()
    import ray

    from dynamics.orchestration.names import find_actor, pool_name
    from dynamics.orchestration.run import ensure_ray, local_resources_for, run_experiment

    dirs = {k: tempfile.mkdtemp(prefix=f"dynamics-bench-eval{k}-") for k in ("on", "off")}
    try:
        cfgs = {k: make_config(args, k == "on", dirs[k]) for k in ("on", "off")}
    except BaseException:  # a bad config or override: leave no empty temp dirs behind
        for d in dirs.values():
            shutil.rmtree(d, ignore_errors=True)
        raise
    t = time.perf_counter()
    ensure_ray(max(local_resources_for(c) for c in cfgs.values()))
    ray_start = time.perf_counter() - t
    log(f"ray up in {ray_start:.1f}s; runs {cfgs['on'].run_id} and {cfgs['off'].run_id}")

    runs = {}
    try:
        for k in args.order.split(","):
            cfg = cfgs[k]
            log(f"[eval {k}] {cfg.train.max_steps} steps, checkpoint every {cfg.train.checkpoint_every}, "
                f"{cfg.train.num_workers} workers ZeRO-{cfg.train.zero_stage}, output {cfg.experiment_dir}")
            load_before = os.getloadavg()[0]
            outcome = run_experiment(cfg, quiet=True)
            load_after = os.getloadavg()[0]
            log(f"[eval {k}] fit {outcome.train_seconds:.1f}s, total {outcome.total_seconds:.1f}s, "
                f"evaluated {outcome.evaluated_steps}")
            runs[k] = {"outcome": outcome, "store": store_summary(cfg), "loadavg_1m": [load_before, load_after]}
            if k == "on":  # free the evaluator (its model, its CPU) before the other run
                pool = find_actor(pool_name(cfg.name))
                if pool is not None:
                    ray.kill(pool)
        end_load = os.getloadavg()[0]
    finally:
        ray.shutdown()
        if not args.keep:
            for d in dirs.values():
                shutil.rmtree(d, ignore_errors=True)

    on, off = runs["on"], runs["off"]
    fams = list(cfgs["on"].eval.evals)
    c = cfgs["on"]
    result = {
        "benchmark": "train_eval",
        "setup": {"config": str(args.config), "model": c.model.name, "dataset": c.data.dataset,
                  "workers": c.train.num_workers, "zero_stage": c.train.zero_stage, "steps": c.train.max_steps,
                  "checkpoint_every": c.train.checkpoint_every, "per_device_batch_size": c.train.per_device_batch_size,
                  "gradient_accumulation_steps": c.train.gradient_accumulation_steps,
                  "max_seq_length": c.data.max_seq_length, "lora_r": c.lora.r, "step0": c.eval.step0,
                  "eval_families": fams, "wandb": {"enabled": c.wandb.enabled, "mode": c.wandb.mode},
                  "order": args.order, "overrides": list(args.overrides),
                  "runs": {k: cfgs[k].run_id for k in cfgs},
                  "output_dirs": {k: str(cfgs[k].experiment_dir) for k in cfgs} if args.keep else None},
        "step_seconds": {
            "excludes_step": 1,
            "eval_on": on["store"]["step_seconds"], "eval_off": off["store"]["step_seconds"],
            "both": summary(on["store"]["_step_values"] + off["store"]["_step_values"]),
            "step1_seconds": {"eval_on": on["store"]["step1_seconds"], "eval_off": off["store"]["step1_seconds"]},
        },
        "eval": on["store"].get("eval"),
        "evaluated_steps": on["outcome"].evaluated_steps,
        "train_seconds": {"eval_on": on["outcome"].train_seconds, "eval_off": off["outcome"].train_seconds},
        "tracking_overhead": {"ratio": on["outcome"].train_seconds / off["outcome"].train_seconds,
                              "seconds": on["outcome"].train_seconds - off["outcome"].train_seconds},
        "total_seconds": {"eval_on": on["outcome"].total_seconds, "eval_off": off["outcome"].total_seconds},
        # run_experiment time outside fit(): tracker/pool start-up, and (eval on) waiting for the last evaluations
        "outside_fit_seconds": {k: runs[k]["outcome"].total_seconds - runs[k]["outcome"].train_seconds
                                for k in runs},
        "final_loss": {"eval_on": on["outcome"].final_loss, "eval_off": off["outcome"].final_loss},
        "ray_start_seconds": ray_start,
        "end_to_end_seconds": time.perf_counter() - t_start,
        # 1-minute load average before and after each run: well above the core count means other processes
        # competed for the CPUs and the on/off comparison is not clean
        "machine": {**facts, "loadavg_1m_at_end": end_load,
                    "loadavg_1m_per_run": {k: runs[k]["loadavg_1m"] for k in runs}},
    }
    return result


if __name__ == "__main__":
    with json_stdout() as emit:
        emit(main())
