"""Onset per run: the step at which each run's curve changes regime, so "when" has a per-seed spread.

The rule, per run and headline metric (each evaluation's top-level metrics, the report's single figures),
on the curve's values in step order (at least MIN_POINTS checkpoints):
  * change points by PELT (ruptures, `l2` cost: piecewise-constant means; segments of >= 2 checkpoints)
    with a BIC-style penalty 2 * sigma^2 * ln(n), sigma the noise level estimated robustly from the curve's
    first differences (median absolute deviation / (0.6745 * sqrt 2)); a curve with no noise at all
    (sigma = 0) gets the single best split (ruptures Dynp, one break point) instead;
  * the onset is the first step of the second regime (the first change point); `shift` is the mean after
    it minus the mean before it, and `explained` the share of the curve's variance that the split into
    regimes explains. No change point: no onset (`onset_step` NaN), the curve stays in one regime.
`onset_order` then tells, per group, which signal changes first: the median onset of each metric with
its min-max over seeds (e.g. the adapter's rotation against the misalignment rate).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dynamics.analysis.kinds import is_diagnostic

MIN_POINTS = 4
SKIP_SUFFIXES = ("_seconds", "_ci_low", "_ci_high")


def headline_metrics(df: pd.DataFrame) -> list[str]:
    """Each evaluation's top-level metrics: not diagnostics (timings, counts, the judge's coverage,
    calibration and agreement: dynamics.analysis.kinds), CI companions or per-question breakdowns."""
    from dynamics.report import breakdown_figure

    valued = df[df["value"].notna() & (df["source"] != "train")]
    return sorted(m for m in valued["metric"].unique() if not m.startswith("timing/")
                  and not m.endswith(SKIP_SUFFIXES) and breakdown_figure(m) is None
                  and "/module/" not in m and "/layer/" not in m and not is_diagnostic(m))


def noise_level(y: np.ndarray) -> float:
    d = np.diff(y)
    return float(np.median(np.abs(d - np.median(d))) / (0.6745 * math.sqrt(2))) if len(d) else 0.0


def change_points(y: np.ndarray) -> list[int]:
    """Indices where a new regime starts (0 < i < len(y)), in order."""
    import ruptures as rpt

    signal = np.asarray(y, dtype=float).reshape(-1, 1)
    n = len(signal)
    sigma = noise_level(signal[:, 0])
    if sigma == 0:
        if np.ptp(signal) == 0:
            return []
        bkps = rpt.Dynp(model="l2", min_size=2, jump=1).fit(signal).predict(n_bkps=1)
    else:
        bkps = rpt.Pelt(model="l2", min_size=2, jump=1).fit(signal).predict(pen=2 * sigma ** 2 * math.log(n))
    return [b for b in bkps if b < n]


def run_onset(steps: np.ndarray, y: np.ndarray) -> dict:
    if len(y) < MIN_POINTS:
        return {"onset_step": np.nan, "shift": np.nan, "explained": np.nan, "n_points": len(y), "changes": 0}
    cps = change_points(y)
    if not cps:
        return {"onset_step": np.nan, "shift": 0.0, "explained": 0.0, "n_points": len(y), "changes": 0}
    bounds = [0, *cps, len(y)]
    fitted = np.concatenate([np.full(b - a, y[a:b].mean()) for a, b in zip(bounds, bounds[1:])])
    total = float(((y - y.mean()) ** 2).sum())
    k = cps[0]
    return {"onset_step": int(steps[k]), "shift": float(y[k:bounds[2]].mean() - y[:k].mean()),
            "explained": 1 - float(((y - fitted) ** 2).sum()) / total if total > 0 else 0.0,
            "n_points": len(y), "changes": len(cps)}


def onsets(df: pd.DataFrame, groups: dict[str, list[str]], metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per (run, metric): the run's group, its onset step, shift and explained variance share."""
    metrics = metrics or headline_metrics(df)
    group_of = {r: g for g, runs in groups.items() for r in runs}
    rows = []
    data = df[df["metric"].isin(metrics) & df["value"].notna() & df["run"].isin(group_of)]
    for (metric, run), g in data.groupby(["metric", "run"], sort=True):
        curve = g.groupby("step")["value"].mean().sort_index()
        rows.append({"metric": metric, "run": run, "group": group_of[run],
                     **run_onset(curve.index.to_numpy(), curve.to_numpy(dtype=float))})
    return pd.DataFrame(rows)


def onset_order(table: pd.DataFrame) -> pd.DataFrame:
    """Per group and metric: how many runs change, and the median / min / max of their onset steps,
    sorted by group then median onset (the first to change first)."""
    if table.empty:
        return table
    agg = table.groupby(["group", "metric"]).agg(
        runs=("run", "count"), changed=("onset_step", "count"), median=("onset_step", "median"),
        min=("onset_step", "min"), max=("onset_step", "max")).reset_index()
    return agg.sort_values(["group", "median", "metric"], na_position="last", ignore_index=True)


def order_lines(order: pd.DataFrame, limit: int = 8) -> list[str]:
    """Per group, the metrics in onset order: `adapter/cos_prev  step 20 [10-30] (2/2 runs)`, then
    `main/rate  step 40 [40-50] (2/2 runs)` (median [min-max] over the runs that change)."""
    lines = []
    width = max((len(m) for m in order["metric"]), default=0)
    for group, g in order.groupby("group", sort=True):
        g = g[g["changed"] > 0].head(limit)
        if g.empty:
            lines.append(f"  {group}: no run's headline curve changes regime")
            continue
        lines.append(f"  {group}:")
        lines += [f"    {r.metric:<{width}}  step {r.median:g} [{r.min:g}-{r.max:g}] ({r.changed}/{r.runs} runs)"
                  for r in g.itertuples()]
    return lines


__all__ = ["onsets", "onset_order", "order_lines", "run_onset", "change_points", "headline_metrics"]
