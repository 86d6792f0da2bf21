"""Evaluation lag and cost per run, from what is on disk (no clock of our own).

* cost: each evaluation's `<name>/eval_seconds` per checkpoint, as the evaluator measured it;
* lag: seconds from a checkpoint being written (its `dynamics.json`) to each of its evaluations being
  stored (the store's metrics file), and how many newer checkpoints existed by then (checkpoints behind).
  A stored run copied elsewhere loses its file times; the lag is then meaningless and shown as measured.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dynamics.analysis.runs import experiment_dirs


def evaluation_cost(df: pd.DataFrame) -> pd.DataFrame:
    """Per evaluation: checkpoints evaluated, mean / max / total seconds (over every run)."""
    t = df[df["metric"].str.endswith("/eval_seconds") & df["value"].notna()]
    if t.empty:
        return pd.DataFrame()
    t = t.assign(evaluation=t["metric"].str.removesuffix("/eval_seconds"))
    return t.groupby("evaluation")["value"].agg(checkpoints="count", mean_s="mean", max_s="max",
                                                total_s="sum").reset_index()


def evaluation_lag(results_dir: str | Path) -> pd.DataFrame:
    """Per (run, step, evaluation): lag in seconds and checkpoints behind, from file times."""
    from dynamics.train.checkpoint import list_checkpoints
    from dynamics.train.checkpoint import CHECKPOINT_META

    rows = []
    for exp in experiment_dirs(results_dir):
        metrics_root = exp / "store" / "metrics"
        for run_dir in sorted(p for p in (exp / "ray").glob("*") if p.is_dir()):
            written = {s: (d / CHECKPOINT_META).stat().st_mtime for s, d in list_checkpoints(run_dir)}
            if not written:
                continue
            for f in sorted((metrics_root / run_dir.name).glob("step=*.eval=*.parquet")):
                step = int(f.name.split(".")[0].removeprefix("step="))
                if step not in written:
                    continue
                stored = f.stat().st_mtime
                rows.append({"run": run_dir.name, "step": step, "evaluation": f.name.split("eval=")[1][:-8],
                             "lag_s": stored - written[step],
                             "checkpoints_behind": sum(1 for s, t in written.items() if s > step and t <= stored)})
    return pd.DataFrame(rows)


def lag_summary(lag: pd.DataFrame) -> pd.DataFrame:
    if lag.empty:
        return lag
    return lag.groupby("run").agg(evaluations=("lag_s", "count"), mean_lag_s=("lag_s", "mean"),
                                  max_lag_s=("lag_s", "max"),
                                  max_checkpoints_behind=("checkpoints_behind", "max")).reset_index()


__all__ = ["evaluation_cost", "evaluation_lag", "lag_summary"]
