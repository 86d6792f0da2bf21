"""What a finished (or running) sweep cost on this machine, read from its results directory.

    python benchmarks/sweep_cost.py results/laptop_study
    python benchmarks/sweep_cost.py results/laptop_study --memory-log mem.log

Per run: wall time (done.json's `total_seconds`, else from file times: the run's config.yaml, written when
it starts, to its done.json), training seconds, the median optimizer step, and the evaluation lag (from
checkpoint written to evaluation stored, and checkpoints behind: dynamics.analysis.costs). Over the
sweep: its wall time (first run started to last run done), the evaluation cost per evaluation, and the
disk it takes (checkpoints, metric store, W&B files).

`--memory-log` reads a sampler's lines `<unix time> <used MB> [...]`, e.g. written beside the sweep by
    while sleep 5; do echo "$(date +%s) $(free -m | awk 'NR==2{print $3}')"; done > mem.log
and reports the machine's peak used memory over the sweep's time, above what was used before it started.

Prints one JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

# importing _bench first puts this checkout on sys.path and sets the offline environment
from _bench import finish, json_stdout, log, machine, summary


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20 if path.exists() else 0.0


def _memory(log_path: Path, start: float, end: float) -> dict:
    samples = []
    for line in log_path.read_text().splitlines():
        parts = line.split()
        try:
            samples.append((float(parts[0]), float(parts[1])))
        except (IndexError, ValueError):
            continue
    before = [mb for t, mb in samples if t < start]
    during = [mb for t, mb in samples if start <= t <= end]
    if not during:
        return {"samples": 0}
    base = before[-1] if before else min(during)
    return {"samples": len(during), "used_before_mb": base, "peak_used_mb": max(during),
            "peak_above_before_mb": max(during) - base, "median_used_mb": statistics.median(during)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", help="an experiment's results directory, e.g. results/laptop_study")
    ap.add_argument("--memory-log", type=Path, help="a sampler's '<unix time> <used MB>' lines")
    args = ap.parse_args()
    t0, facts = time.perf_counter(), machine()
    with json_stdout() as emit:
        from dynamics.analysis.costs import evaluation_cost, evaluation_lag, lag_summary
        from dynamics.tracking.store import MetricStore

        exp = Path(args.experiment)
        df = MetricStore(exp).metrics()
        lag = evaluation_lag(exp)
        lags = lag_summary(lag).set_index("run") if not lag.empty else None
        runs, starts, ends = [], [], []
        for run_dir in sorted(p for p in (exp / "runs").glob("*") if p.is_dir()):
            done_file, config_file = run_dir / "done.json", run_dir / "config.yaml"
            done = json.loads(done_file.read_text()) if done_file.is_file() else {}
            start = config_file.stat().st_mtime if config_file.is_file() else None
            end = done_file.stat().st_mtime if done_file.is_file() else None
            wall = done.get("total_seconds") or (end - start if start and end else None)
            steps = df[(df["run"] == run_dir.name) & (df["metric"] == "train/step_seconds")]["value"]
            row = {"run": run_dir.name, "finished": bool(done), "wall_seconds": wall,
                   "train_seconds": done.get("train_seconds"), "steps": int(len(steps)),
                   "median_step_seconds": float(steps.median()) if len(steps) else None}
            if lags is not None and run_dir.name in lags.index:
                row.update({k: float(v) for k, v in lags.loc[run_dir.name].items()})
            runs.append(row)
            if start:
                starts.append(start)
            if end:
                ends.append(end)
            log(f"{run_dir.name}: {row}")
        cost = evaluation_cost(df)
        checkpoints = sum(1 for _ in (exp / "ray").glob("*/checkpoint_step*")) if (exp / "ray").exists() else 0
        result = {
            "experiment": str(exp), "runs": runs,
            "finished_runs": sum(r["finished"] for r in runs),
            "sweep_wall_seconds": (max(ends) - min(starts)) if starts and ends else None,
            "run_wall_seconds": summary(r["wall_seconds"] for r in runs if r["finished"]),
            "step_seconds": summary(df[df["metric"] == "train/step_seconds"]["value"]),
            "evaluation_cost": cost.to_dict(orient="records") if not cost.empty else [],
            "evaluation_lag_seconds": summary(lag["lag_s"]) if not lag.empty else None,
            "max_checkpoints_behind": int(lag["checkpoints_behind"].max()) if not lag.empty else None,
            "disk_mb": {"checkpoints": _size_mb(exp / "ray"), "store": _size_mb(exp / "store"),
                        "wandb": sum(_size_mb(p / "wandb") for p in (exp / "runs").glob("*")),
                        "checkpoints_count": checkpoints},
        }
        if args.memory_log:
            result["memory"] = _memory(args.memory_log, min(starts) if starts else 0.0,
                                       max(ends) if ends else time.time())
        emit(finish(result, facts, t0))


if __name__ == "__main__":
    main()
