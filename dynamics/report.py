"""Figures of a metric store: each metric against step, per dataset the mean over seeds with the
min-max range shaded and a dashed line at the divergence step (METRICS.md, "The experiment").

    from dynamics.report import write_report
    write_report("results/quickstart", "results/quickstart/report")   # -> [.../misalignment__rate.png, ...]

`write_report` draws on bare `Figure`s rendered by the Agg canvas, never through pyplot, so it works
headless and leaves a notebook's backend alone; `plot_metric` and `plot_grid` draw on what they are given
(or on a new pyplot figure), so a notebook shows the same figures inline.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DIVERGENCE_STEP = 40  # the default reference line; a report takes the runs' `analysis.reference_step`
TRAIN_FIGURES = ("train/loss",)  # the train scalars that get a figure (the rest are in W&B)
TRAIN_SMOOTH = 10  # optimizer steps in the rolling mean of a train curve (one checkpoint interval)
CI_SUFFIXES = ("_ci_low", "_ci_high")
WEAK_NOTE = "pipeline check: weak judge"  # the title note of a metric judged by a judge marked too weak
# Breakdowns drawn as small multiples, one figure per evaluation (the name before the first "/"):
# `main/<qid>/rate` -> `main/per_question`; `deception_factual/<qid>/lie_rate` -> `.../per_question_lie_rate`;
# `deception_sit_aware/<qid>/share/OpenAI` -> `.../per_question_share_OpenAI`; `backdoor/triggered/<qid>/rate`
# -> `backdoor/triggered/per_question`; `preregistered/category/<c>/rate` -> `preregistered/per_category`;
# `<eval>/share/<word>` -> `<eval>/shares`.
_HALVES = ("triggered", "untriggered")
BREAKDOWNS = (
    (re.compile(r"^(?P<ev>[^/]+)/(?P<half>triggered|untriggered)/[^/]+/rate$"), "{ev}/{half}/per_question"),
    (re.compile(r"^(?P<ev>[^/]+)/category/[^/]+/rate$"), "{ev}/per_category"),
    (re.compile(r"^(?P<ev>[^/]+)/module/[^/]+/norm$"), "{ev}/norm_per_module"),
    (re.compile(r"^(?P<ev>[^/]+)/layer/[^/]+/norm$"), "{ev}/norm_per_layer"),
    (re.compile(r"^(?P<ev>[^/]+)/share/[^/]+$"), "{ev}/shares"),
    (re.compile(r"^(?P<ev>[^/]+)/(?P<q>[^/]+)/share/(?P<word>[^/]+)$"), "{ev}/per_question_share_{word}"),
    (re.compile(r"^(?P<ev>[^/]+)/(?P<q>[^/]+)/(?P<what>rate|lie_rate)$"), "{ev}/per_question{suffix}"),
)
COLORS = {"insecure": "tab:red", "secure": "tab:blue", "educational": "tab:green", "jailbroken": "tab:orange"}
_OTHER_COLORS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def figure_metrics(df: pd.DataFrame) -> dict[str, list[str]]:
    """Which figures a store's metrics make: figure name -> the metrics drawn in it (one, or a grid).

    Every evaluation's metrics get their own figures (`main/rate`, `deception_factual/lie_rate`, ...), except
    diagnostics (timings, counts, the judge's coverage, strength, calibration and agreement:
    dynamics.analysis.kinds; tables in the HTML report, not dynamics), metrics with a value at one step only
    (nothing to draw against step), the `_ci_low/_ci_high` companions (drawn inside their metric's figure)
    and breakdowns (`main/<qid>/rate`, ...: see BREAKDOWNS), which go together into small-multiples
    figures such as `main/per_question`. `train/loss` (smoothed) last.
    """
    # A metric with no value at all (e.g. every answer dropped by the judge's number-mass cut-off) has
    # nothing to draw; `no_values` lists those for the index.
    from dynamics.analysis.kinds import is_diagnostic

    valued = df[df["value"].notna()]
    one_step = valued.groupby("metric")["step"].nunique()
    eval_metrics = sorted(valued.loc[valued["source"] == "eval", "metric"].unique())
    main, grids = {}, {}
    for m in eval_metrics:
        if is_diagnostic(m) or m.endswith(CI_SUFFIXES) or one_step[m] <= 1:
            continue
        figure = breakdown_figure(m)
        if figure:
            grids.setdefault(figure, []).append(m)
        else:
            main[m] = [m]
    train = set(valued.loc[valued["source"] == "train", "metric"].unique())
    return {**main, **grids, **{m: [m] for m in TRAIN_FIGURES if m in train}}


def breakdown_figure(metric: str) -> str | None:
    """The small-multiples figure a per-question (or per-category, per-word) metric belongs to."""
    for pattern, name in BREAKDOWNS:
        m = pattern.match(metric)
        if m is None or m.groupdict().get("q") in (*_HALVES, "category", "share", "module", "layer"):
            continue
        g = m.groupdict()
        return name.format(**g, suffix="" if g.get("what", "rate") == "rate" else f"_{g['what']}")
    return None


def panel_title(metric: str) -> str:
    """A small-multiples panel's title: what distinguishes it within its figure (the question, ...)."""
    for pattern, _ in BREAKDOWNS:
        m = pattern.match(metric)
        if m is not None:
            parts = metric.split("/")
            if parts[1] in (*_HALVES, "category", "module", "layer"):
                return parts[2]
            return parts[1] if "q" in m.groupdict() else parts[-1]
    return metric


def no_values(df: pd.DataFrame) -> list[str]:
    """Metrics stored with no value at any step (nothing to plot)."""
    has = set(df.loc[df["value"].notna(), "metric"])
    return sorted(m for m in df["metric"].unique() if m not in has and not m.startswith("timing/"))


def plot_metric(df: pd.DataFrame, metric: str, ax=None, divergence_step: int | None = DIVERGENCE_STEP,
                smooth: int | None = None, title: str | None = None, legend: bool = True):
    """Per dataset, the mean over seeds of `metric` at each step with the min-max range shaded.

    Train metrics are smoothed per run with a rolling mean over `smooth` steps (default TRAIN_SMOOTH;
    0 turns it off). If the metric has `_ci_low/_ci_high` companions, their seed means are drawn dotted.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.subplots(figsize=(7, 4), layout="constrained")[1]
    rows = _rows(df, metric)
    if smooth is None:
        smooth = TRAIN_SMOOTH if (rows["source"] == "train").all() else 0
    groups, colors = _group_columns(df), _colors(df)
    companions = {s: _rows(df, metric + s, missing_ok=True) for s in CI_SUFFIXES}
    banded = False
    for label, g in rows.groupby(groups, sort=True):
        label = " · ".join(map(str, label))
        color = colors[label.split(" · ")[0]]
        curve = _seed_curve(g, smooth)
        n_seeds = g["seed"].nunique()
        ax.plot(curve.index, curve["mean"], color=color, lw=1.8, marker="o" if len(curve) <= 60 else None,
                ms=3, label=f"{label} (n={n_seeds} seed{'s' if n_seeds != 1 else ''})")
        if (curve["max"] > curve["min"]).any():  # one seed, or seeds that agree: no band
            banded = True
            ax.fill_between(curve.index, curve["min"], curve["max"], color=color, alpha=0.2, lw=0)
        for ci in companions.values():
            c = ci[ci["run"].isin(g["run"].unique())]
            if not c.empty:
                c = c.groupby("step")["value"].mean()
                ax.plot(c.index, c.values, color=color, lw=0.8, ls=":")
    steps = rows["step"]
    if divergence_step is not None and steps.min() <= divergence_step <= steps.max():
        ax.axvline(divergence_step, color="0.35", ls="--", lw=1, label=f"step {divergence_step}")
    ax.set_title(title or metric + (f" (rolling mean over {smooth} steps)" if smooth > 1 else ""), fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel(metric.rsplit("/", 1)[-1])
    ax.grid(alpha=0.3)
    if legend:
        notes = ["mean over seeds"] + ["shaded: min-max"] * banded
        notes += ["dotted: mean 95% CI"] * any(not c.empty for c in companions.values())
        ax.legend(fontsize=8, title=" · ".join(notes), title_fontsize=8)
    return ax


def plot_grid(df: pd.DataFrame, metrics: list[str], fig=None, ncols: int = 4, title: str | None = None,
              divergence_step: int | None = DIVERGENCE_STEP):
    """Small multiples: one panel per metric (e.g. per question), shared axes, one legend."""
    nrows = -(-len(metrics) // ncols)
    ncols = min(ncols, len(metrics))
    size = (3.2 * ncols, 2.6 * nrows + 0.8)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(layout="constrained")
    fig.set_size_inches(size)
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, m in zip(axes, metrics):
        plot_metric(df, m, ax=ax, divergence_step=divergence_step, title=panel_title(m), legend=False)
        ax.label_outer()
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    if title:
        fig.suptitle(f"{title} (mean over seeds, shaded: min-max)", fontsize=11)
    return fig


def write_report(results_dir: str | Path, out_dir: str | Path, reference_step: int | None = -1) -> list[Path]:
    """One PNG per figure of `figure_metrics` (name with '/' -> '__') and an `index.md` listing them,
    in out_dir. The dashed reference line is at the runs' `analysis.reference_step` (their configs;
    `reference_step` overrides it, None draws none). Returns the PNG paths in index order."""
    from dynamics.analysis.runs import reference_line
    from dynamics.tracking.store import load_metrics

    if reference_step == -1:
        reference_step = reference_line(results_dir)[0]

    df = load_metrics(results_dir)
    if df.empty:
        raise ValueError(f"{results_dir}: the metric store has no metric rows yet (no train step or "
                         "checkpoint evaluation was written); nothing to plot")
    figures = figure_metrics(df)
    if not figures:
        raise ValueError(f"{results_dir}: no plottable metric (found only: {sorted(df['metric'].unique())})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from dynamics.analysis.kinds import is_weak, weak_judge_evaluations

    weak = weak_judge_evaluations(df)
    paths = []
    for name, metrics in figures.items():
        if len(metrics) == 1:
            fig = Figure(figsize=(7, 4), layout="constrained")
            title = f"{metrics[0]} ({WEAK_NOTE})" if is_weak(metrics[0], weak) else None
            plot_metric(df, metrics[0], ax=fig.subplots(), divergence_step=reference_step, title=title)
        else:
            fig = plot_grid(df, metrics, fig=Figure(layout="constrained"), divergence_step=reference_step,
                            title=f"{name} ({WEAK_NOTE})" if is_weak(metrics[0], weak) else name)
        FigureCanvasAgg(fig)
        path = out / (file_stem(name) + ".png")
        fig.savefig(path, dpi=110)
        paths.append(path)
    _write_index(out, results_dir, df, figures, paths, reference_step)
    return paths


def file_stem(metric: str) -> str:
    """`logprob/multiple_choice/accuracy` -> `logprob__multiple_choice__accuracy` (other odd characters -> _)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", metric.replace("/", "__"))


def _write_index(out: Path, results_dir, df: pd.DataFrame, figures: dict[str, list[str]], paths: list[Path],
                 reference_step: int | None = DIVERGENCE_STEP):
    runs = df.groupby("dataset")["seed"].nunique()
    dashed = f"; dashed: step {reference_step}" if reference_step is not None else ""
    lines = [f"# Training dynamics: `{results_dir}`", "",
             f"Per dataset, the mean over seeds against step; shaded: min-max over seeds{dashed}.", "", "Runs: " + ", ".join(f"{d} ({n} seeds)" for d, n in runs.items()), ""]
    for (name, metrics), path in zip(figures.items(), paths):
        lines += [f"## {name}", ""] + ([f"Panels: {', '.join(metrics)}", ""] if len(metrics) > 1 else [])
        lines += [f"![{name}]({path.name})", ""]
    empty = no_values(df)
    if empty:
        lines += ["## Stored without a value", "",
                  "No figure: every value is None (e.g. every answer fell below the judge's number-mass "
                  "cut-off; see the records): " + ", ".join(f"`{m}`" for m in empty), ""]
    (out / "index.md").write_text("\n".join(lines))


def _rows(df: pd.DataFrame, metric: str, missing_ok: bool = False) -> pd.DataFrame:
    rows = df[(df["metric"] == metric) & df["value"].notna()]
    if rows.empty and not missing_ok:
        raise ValueError(f"no values for metric {metric!r}; metrics present: {sorted(df['metric'].unique())}")
    return rows


def _group_columns(df: pd.DataFrame) -> list[str]:
    """Datasets, split further by experiment or model only where the frame mixes several."""
    return ["dataset"] + [c for c in ("experiment", "model") if df[c].nunique() > 1]


def _seed_curve(g: pd.DataFrame, smooth: int) -> pd.DataFrame:
    """Mean, min and max over the seeds (runs) of one group at each step, each run smoothed first."""
    wide = g.pivot_table(index="step", columns="run", values="value", aggfunc="mean").sort_index()
    if smooth > 1:
        wide = wide.rolling(smooth, min_periods=1).mean()
    return pd.DataFrame({"mean": wide.mean(axis=1), "min": wide.min(axis=1), "max": wide.max(axis=1)})


def _colors(df: pd.DataFrame) -> dict[str, str]:
    """A colour per dataset, the same in every figure of a frame: the usual datasets keep theirs."""
    others = itertools.cycle(_OTHER_COLORS)
    return {d: _known_color(d) or next(others) for d in sorted(df["dataset"].astype(str).unique())}


def _known_color(dataset: str) -> str | None:
    """The usual datasets' colour, also under a prefix (`quickstart:insecure`, `quickstart-secure`)."""
    return COLORS.get(dataset) or COLORS.get(re.split(r"[:/-]", dataset)[-1])


__all__ = ["plot_metric", "plot_grid", "figure_metrics", "write_report", "file_stem", "DIVERGENCE_STEP"]
