"""`dynamics compare`: when do two groups of runs separate, on every metric (docs/METRICS.md section 5).

    from dynamics.analysis.compare import compare, write_compare
    result = compare("results/cpu_sweep", by="data.dataset")
    write_compare(result, "results/cpu_sweep/compare")  # curves / tests / divergence / onsets, Parquet + CSV
    print("\\n".join(result.summary()))

Groups are the values of one config key (`by`; default the dataset) over the runs of a results dir; the
runs of a group are its seeds. For every metric and step: each group's mean over seeds, min-max band and
bootstrap 95% interval (`curves`); for every pair of groups the difference of means with a per-step
permutation p-value (uncorrected) and the cluster-based permutation test across steps (`tests`); and per
metric and pair the first step of the first significant cluster, the divergence step (`divergence`);
and per run each headline metric's onset, where its curve changes regime (`onsets`, onset.py). The
statistics are in `dynamics.analysis.stats`.

Tests use the steps at which every run of both groups has a value (a run still training, or an
evaluation added to some runs only, shortens the tested range; `divergence.steps_tested` says how many).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dynamics.analysis import stats
from dynamics.analysis.kinds import is_behaviour_relative, is_diagnostic
from dynamics.analysis.onset import headline_metrics, onset_order, onsets, order_lines
from dynamics.analysis.runs import run_groups

TRAIN_METRICS = ("train/loss",)
SKIP_SUFFIXES = ("_seconds", "_ci_low", "_ci_high")


def comparable_metrics(df: pd.DataFrame) -> list[str]:
    """Every evaluation metric with a value and the train loss; diagnostics (timings, counts, the judge's
    coverage, calibration and agreement: dynamics.analysis.kinds) and CI companions aside."""
    valued = df[df["value"].notna()]
    evals = sorted(m for m in valued.loc[valued["source"] != "train", "metric"].unique()
                   if not m.startswith("timing/") and not m.endswith(SKIP_SUFFIXES) and not is_diagnostic(m))
    train = [m for m in TRAIN_METRICS if m in set(valued.loc[valued["source"] == "train", "metric"])]
    return evals + train


def wide(df: pd.DataFrame, metric: str | None, runs: list[str]) -> pd.DataFrame:
    """steps x runs of one metric (NaN where a run has no value); metric None: `df` holds one metric."""
    rows = df[df["value"].notna() & (df["metric"] == metric if metric is not None else True)]
    rows = rows[rows["run"].isin(runs)]
    table = rows.groupby(["step", "run"])["value"].mean().unstack("run").sort_index()
    return table.reindex(columns=[r for r in runs if r in table.columns])


@dataclass
class CompareResult:
    by: str
    groups: dict[str, list[str]]  # group -> its runs
    curves: pd.DataFrame
    tests: pd.DataFrame
    divergence: pd.DataFrame
    alpha: float
    onsets: pd.DataFrame = field(default_factory=pd.DataFrame)  # per run and headline metric (onset.py)
    notes: list[str] = field(default_factory=list)

    def divergence_step(self, metric: str) -> tuple[int | None, float | None]:
        """The first pair's divergence step of `metric` and its p (None, None when it does not separate)."""
        d = self.divergence[(self.divergence["metric"] == metric) & self.divergence["separates"]]
        if d.empty:
            return None, None
        row = d.iloc[0]
        return int(row["divergence_step"]), float(row["p"])

    def summary(self) -> list[str]:
        """Per pair: the seeds' limit on p, then per metric "separates from step S (p = ...)" or not."""
        lines = [f"compare by {self.by}: " + ", ".join(f"{g} ({len(r)} run{'s' * (len(r) != 1)})"
                                                      for g, r in self.groups.items())]
        lines += self.notes
        from dynamics.report import breakdown_figure

        for (a, b), d in self.divergence.groupby(["group_a", "group_b"], sort=False):
            lines.append(f"{a} vs {b}: {seed_limit_note(d)}")
            # a breakdown (per layer, per module, per question) of more than FOLD metrics is one line
            family = {m: breakdown_figure(m) for m in d["metric"]}
            size = pd.Series([f for f in family.values() if f]).value_counts().to_dict()
            folded = {m: f for m, f in family.items() if f and size[f] > FOLD}
            shown = [m for m in d["metric"] if m not in folded]
            width = max([len(m) for m in shown] + [len(f) + 12 for f in folded.values()] + [10])
            said = set()
            for _, row in d.iterrows():
                m = row["metric"]
                if m not in folded:
                    lines.append(f"  {m:<{width}}  {describe(row, a, b)}")
                elif folded[m] not in said:
                    said.add(folded[m])
                    lines.append(f"  {folded[m] + f' ({size[folded[m]]} metrics)':<{width}}  "
                                 + _fold_line(d[d["metric"].map(folded.get) == folded[m]], a, b))
        if not self.onsets.empty:
            lines.append("onset per run (first PELT change point; median [min-max] over seeds, earliest first):")
            lines += order_lines(onset_order(self.onsets))
        return lines


FOLD = 6  # a breakdown of more metrics than this is one line of the summary (the tables keep every one)


def _fold_line(rows: pd.DataFrame, a: str, b: str) -> str:
    """One line for a breakdown's metrics: how many separate, from which step, which ones."""
    sep = rows[rows["separates"]].sort_values(["divergence_step", "metric"])
    tested = int((rows["steps_tested"] > 0).sum())
    if sep.empty:
        return f"none separates ({tested} tested)" if tested else describe(rows.iloc[0], a, b)
    first = sep.iloc[0]
    above = {a if s > 0 else b for s in sep["sign"]}
    names = ", ".join(m.rsplit("/", 2)[-2] for m in sep["metric"][:8]) + (", ..." if len(sep) > 8 else "")
    return (f"{len(sep)} of {tested} separate, the first from step {int(first['divergence_step'])} "
            f"(p <= {sep['p'].max():.3g}; {' / '.join(sorted(above))} higher): {names}")


def seed_limit_note(d: pd.DataFrame) -> str:
    tested = d[d["steps_tested"] > 0]
    if tested.empty:
        return "no metric has >= 2 seeds per group at a common step: nothing tested"
    row = tested.iloc[0]
    n_a, n_b, n_rel, min_p = int(row["n_a"]), int(row["n_b"]), int(row["relabellings"]), float(row["min_p"])
    how = "every relabelling (exact)" if row["exact"] else f"{int(row['resamples'])} random relabellings"
    note = (f"{n_a} vs {n_b} seeds: {n_rel} relabellings of the runs, tested over {how}; the smallest "
            f"p possible is {min_p:.3g}")
    if min_p > float(d["alpha"].iloc[0]):
        note += (f", above alpha = {float(d['alpha'].iloc[0]):g}: no difference can be significant with "
                 "so few seeds (4 vs 4 seeds: 70 relabellings, p >= 0.029; 5 vs 5: 252, p >= 0.0079)")
    return note


def describe(row, a: str, b: str) -> str:
    reason = row.get("reason")
    if isinstance(reason, str) and reason:
        return f"not tested ({reason})"
    if row["steps_tested"] == 0:
        return "not tested (fewer than 2 seeds per group at every step)"
    if row["separates"]:
        above = a if row["sign"] > 0 else b
        return (f"separates from step {int(row['divergence_step'])} (p = {row['p']:.3g}; cluster steps "
                f"{int(row['cluster_first'])}-{int(row['cluster_last'])}, {above} higher)")
    best = "" if pd.isna(row["p"]) else f" (best cluster p = {row['p']:.3g})"
    return "does not separate" + best


def compare(results_dir: str | Path | None = None, by: str = "data.dataset", df: pd.DataFrame | None = None,
            metrics: list[str] | None = None, alpha: float = 0.05, threshold_alpha: float = 0.05,
            max_resamples: int = 9999, seed: int = 0, include_adapter: bool = True) -> CompareResult:
    """Compare the groups of runs of `results_dir` (or of the metric frame `df`) on every metric."""
    if df is None:
        from dynamics.analysis.runs import analysis_frame

        df = analysis_frame(results_dir, include_adapter=include_adapter)
    groups = run_groups(df, by, results_dir)
    if len(groups) < 2:
        raise ValueError(f"compare by {by!r}: the runs have one value ({', '.join(groups) or 'none'}); "
                         "name a config key that differs between runs (e.g. --by data.dataset)")
    metrics = metrics or comparable_metrics(df)
    curves, tests, divergence = [], [], []
    by_metric = dict(tuple(df[df["metric"].isin(metrics)].groupby("metric", sort=False)))
    all_runs = [r for runs in groups.values() for r in runs]
    behaviours = _trained_behaviours(df, groups)
    for metric in metrics:
        w = wide(by_metric[metric], None, all_runs)
        columns = {g: w.reindex(columns=[r for r in runs if r in w.columns]) for g, runs in groups.items()}
        for g, wg in columns.items():
            curves.append(group_curve(wg.dropna(how="all"), metric, g, seed))
        for a, b in itertools.combinations(groups, 2):
            t, d = test_pair(metric, (a, columns[a]), (b, columns[b]), alpha, threshold_alpha, max_resamples,
                             seed)
            if is_behaviour_relative(metric) and behaviours[a] != behaviours[b]:
                t, d = pd.DataFrame(), _not_comparable(d, metric, behaviours[a], behaviours[b], a, b)
            tests.append(t)
            divergence.append(d)
    notes = []
    sizes = {g: len(r) for g, r in groups.items()}
    if min(sizes.values()) < 2:
        notes.append("a group with one run has no spread: its pairs are not tested")
    onset_table = onsets(df, groups, [m for m in headline_metrics(df) if m in set(metrics)])
    return CompareResult(by, groups, _concat(curves), _concat(tests), pd.DataFrame(divergence), alpha, onset_table,
                         notes)


def _trained_behaviours(df: pd.DataFrame, groups: dict[str, list[str]]) -> dict[str, frozenset]:
    """Per group, the behaviours its runs were trained to write (from each run's dataset)."""
    from dynamics.evals.in_distribution import trained_behaviour_of

    dataset = df.drop_duplicates("run").set_index("run")["dataset"].astype(str).to_dict()
    return {g: frozenset(trained_behaviour_of(dataset.get(r, "")) for r in runs) for g, runs in groups.items()}


def _not_comparable(d: dict, metric: str, behaviour_a: frozenset, behaviour_b: frozenset, a: str, b: str) -> dict:
    """A behaviour-relative metric between groups trained on different behaviours: not tested, and why."""
    def name(bs: frozenset) -> str:
        return "/".join(sorted(str(x) for x in bs))

    rate = metric.rsplit("/", 1)[0] + "/" + ("static_insecure_rate" if "static_" in metric else "insecure_rate")
    return {**d, "steps_tested": 0, "separates": False, "divergence_step": None, "p": None, "sign": 0,
            "cluster_first": None, "cluster_last": None,
            "reason": (f"not comparable: the rate of each run's trained behaviour ({a}: {name(behaviour_a)} code, "
                       f"{b}: {name(behaviour_b)} code), two different quantities; compare {rate}")}


def group_curve(w: pd.DataFrame, metric: str, group: str, seed: int) -> pd.DataFrame:
    values = w.to_numpy(dtype=float)
    low, high = stats.seed_bootstrap(values, seed=seed) if len(values) else (np.array([]), np.array([]))
    return pd.DataFrame({
        "metric": metric, "group": group, "step": w.index.astype(int),
        "n": np.sum(~np.isnan(values), axis=1) if len(values) else [],
        "mean": np.nanmean(values, axis=1) if len(values) else [],
        "min": np.nanmin(values, axis=1) if len(values) else [],
        "max": np.nanmax(values, axis=1) if len(values) else [],
        "ci_low": low, "ci_high": high,
    })


def test_pair(metric, group_a, group_b, alpha, threshold_alpha, max_resamples, seed):
    """Per-step and cluster tests of one metric; group_*: (label, steps x runs of that group)."""
    (a, wa), (b, wb) = group_a, group_b
    wa, wb = wa.dropna(axis=1, how="all"), wb.dropna(axis=1, how="all")
    common = wa.dropna().index.intersection(wb.dropna().index)
    base = {"metric": metric, "group_a": a, "group_b": b, "n_a": wa.shape[1], "n_b": wb.shape[1], "alpha": alpha}
    none = {**base, "steps_tested": 0, "separates": False, "divergence_step": None, "p": None, "sign": 0,
            "cluster_first": None, "cluster_last": None, "relabellings": stats.relabellings(wa.shape[1], wb.shape[1]),
            "resamples": 0, "exact": False, "min_p": None, "first_step": None, "last_step": None}
    if wa.shape[1] < 2 or wb.shape[1] < 2 or len(common) == 0:
        return pd.DataFrame(), none
    xa, xb = wa.loc[common].to_numpy(float), wb.loc[common].to_numpy(float)
    res = stats.cluster_test(xa, xb, threshold_alpha, max_resamples, seed)
    p_step = stats.step_permutation_p(xa, xb, max_resamples, seed)
    steps = np.asarray(common, dtype=int)
    cluster_of = np.full(len(steps), -1)
    cluster_p = np.full(len(steps), np.nan)
    for i, c in enumerate(res.clusters):
        cluster_of[c.first:c.last + 1] = i
        cluster_p[c.first:c.last + 1] = c.p
    tests = pd.DataFrame({"metric": metric, "group_a": a, "group_b": b, "step": steps,
                          "diff": xa.mean(1) - xb.mean(1), "t": res.t, "p_step": p_step,
                          "cluster": cluster_of, "cluster_p": cluster_p,
                          "significant": cluster_p <= alpha})
    first = res.first_significant(alpha)
    best = min((c.p for c in res.clusters), default=None)
    div = {**none, "steps_tested": len(steps), "relabellings": res.n_relabellings, "resamples": res.n_resamples,
           "exact": res.exact, "min_p": res.min_p, "first_step": int(steps[0]), "last_step": int(steps[-1]),
           "p": best, "threshold_t": res.threshold}
    if first is not None:
        div.update(separates=True, divergence_step=int(steps[first.first]), p=first.p, sign=first.sign,
                   cluster_first=int(steps[first.first]), cluster_last=int(steps[first.last]))
    return tests, div


def write_compare(result: CompareResult, out_dir: str | Path) -> list[Path]:
    """curves / tests / divergence / onsets as Parquet and CSV, and summary.txt, in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ("curves", "tests", "divergence", "onsets"):
        table = getattr(result, name)
        for ext in ("parquet", "csv"):
            path = out / f"{name}.{ext}"
            table.to_parquet(path, index=False) if ext == "parquet" else table.to_csv(path, index=False)
            paths.append(path)
    (out / "summary.txt").write_text("\n".join(result.summary()) + "\n")
    return paths + [out / "summary.txt"]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


__all__ = ["compare", "write_compare", "CompareResult", "comparable_metrics", "wide"]
