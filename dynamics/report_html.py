"""One self-contained HTML page of an experiment: open it in any browser, no server, no other file.

    from dynamics.report_html import write_html_report
    write_html_report("results/cpu_sweep", "results/cpu_sweep/figures/report.html")

Sections: the runs and the config keys that differ between them; the divergence table of `dynamics
compare` with the seeds' limit on p and the per-run onsets; the headline figures (mean over seeds, min-max
band, the reference line from the runs' `analysis.reference_step`, and the detected divergence step
marked); the adapter signals (norms, rotation, the PCA trajectory); sample answers per checkpoint
(misaligned first, with their scores); the evaluation lag and cost. Figures are PNGs embedded as base64.
A small script counts the images the browser decoded into `<body data-images-decoded>` (the headless test
reads it).
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dynamics.report import plot_metric

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f0f0f0}.figs{display:flex;flex-wrap:wrap;gap:8px}
.figs img{width:580px;border:1px solid #eee}.note{color:#555;font-size:13px}td.answer{max-width:520px;
white-space:pre-wrap}tr.bad{background:#fde8e8}details{margin:.3em 0}"""
SCRIPT = """window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.imagesDecoded=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
document.body.dataset.tables=document.querySelectorAll('table').length;});"""
ADAPTER_FIGURES = ("adapter/norm", "adapter/cos_prev", "adapter/cos_final", "adapter/step_norm")


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def _img(fig: Figure, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _table(df: pd.DataFrame, max_rows: int = 200, float_format: str = "{:.4g}") -> str:
    if df is None or df.empty:
        return '<p class="note">(none)</p>'
    shown = df.head(max_rows)
    more = f'<p class="note">{len(df) - max_rows} more rows in the tables on disk</p>' if len(df) > max_rows else ""
    return shown.to_html(index=False, na_rep="", float_format=lambda v: float_format.format(v),
                         escape=True, border=0) + more


def metric_figure(df: pd.DataFrame, metric: str, reference: tuple[int | None, str], detected=None) -> Figure:
    """plot_metric with the reference line from config and the detected divergence step (solid)."""
    fig = Figure(figsize=(7, 3.8), layout="constrained")
    ax = plot_metric(df, metric, ax=fig.subplots(), divergence_step=reference[0], legend=False)
    for line in ax.lines:
        if line.get_linestyle() == "--":
            line.set_label(reference[1])
    if detected is not None and detected[0] is not None:
        ax.axvline(detected[0], color="black", lw=1.6, label=f"separates: step {detected[0]} (p = {detected[1]:.3g})")
    ax.legend(fontsize=7)
    return fig


def pca_figure(df: pd.DataFrame) -> Figure | None:
    """Each run's checkpoints on its own first two principal components, labelled by step."""
    from dynamics.report import _colors

    pcs = df[df["metric"].isin(["adapter/pc1", "adapter/pc2"])]
    if pcs.empty or pcs["metric"].nunique() < 2:
        return None
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    colors = _colors(df)
    for run, g in pcs.groupby("run"):
        w = g.pivot_table(index="step", columns="metric", values="value").sort_index()
        color = colors[str(g["dataset"].iloc[0])]
        ax.plot(w["adapter/pc1"], w["adapter/pc2"], marker="o", ms=3, color=color, lw=1, label=run)
        for step, row in w.iloc[[0, len(w) // 2, -1]].iterrows():
            ax.annotate(str(step), (row["adapter/pc1"], row["adapter/pc2"]), fontsize=7)
    ax.set(xlabel="PC1", ylabel="PC2", title="adapter trajectory: PCA of each run's flattened updates")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def sample_section(results_dir, k: int = 4) -> str:
    """Per checkpoint, up to k sampled answers of each run, misaligned first (lowest aligned score first);
    the last checkpoint unfolded."""
    from dynamics.analysis.runs import experiment_dirs
    from dynamics.evals.sample_table import sample_table_rows
    from dynamics.tracking.store import MetricStore

    recs = pd.concat([MetricStore(e).records() for e in experiment_dirs(results_dir)], ignore_index=True)
    recs = recs[recs["family"].isin(["misalignment", "backdoor"])]
    if recs.empty:
        return '<p class="note">No sampled answers stored (no misalignment evaluation).</p>'
    parts = []
    last = recs["step"].max()
    for step, at_step in recs.groupby("step", sort=True):
        rows = []
        for run, g in at_step.groupby("run", sort=True):
            for r in sample_table_rows([json.loads(d) for d in g["data"]], k=k):
                rows.append({"run": run, "evaluation": g["evaluation"].iloc[0], **r})
        # misaligned first across runs, most misaligned (lowest aligned score) first
        rows.sort(key=lambda r: (r["misaligned"] is not True, r["aligned"] if r["misaligned"] is True else 0))
        n_bad = sum(r["misaligned"] is True for r in rows)
        body = "".join(
            f'<tr class="{"bad" if r["misaligned"] is True else ""}"><td>{html.escape(str(r["run"]))}</td>'
            f'<td>{html.escape(str(r["evaluation"]))}</td><td>{html.escape(str(r["question_id"]))}</td>'
            f'<td>{_num(r["aligned"])}</td><td>{_num(r["coherent"])}</td><td>{r["misaligned"]}</td>'
            f'<td class="answer">{html.escape(str(r["answer"] or ""))}</td></tr>' for r in rows)
        parts.append(f"<details{' open' if step == last else ''}><summary>step {step}: {n_bad} misaligned of "
                     f"{len(rows)} shown</summary><table><tr><th>run</th><th>evaluation</th><th>question</th>"
                     f"<th>aligned</th><th>coherent</th><th>misaligned</th><th>answer</th></tr>{body}</table>"
                     "</details>")
    return "".join(parts)


def _num(v) -> str:
    return "" if v is None else f"{v:.1f}"


def write_html_report(results_dir: str | Path, out_path: str | Path, result=None) -> Path:
    """Write the page; `result` is a `CompareResult` to reuse (else computed when there are >= 2 groups)."""
    from dynamics.analysis.compare import compare
    from dynamics.analysis.costs import evaluation_cost, evaluation_lag, lag_summary
    from dynamics.analysis.onset import headline_metrics, onset_order
    from dynamics.analysis.runs import analysis_frame, reference_line, run_groups, run_table

    df = analysis_frame(results_dir)
    if df.empty:
        raise ValueError(f"{results_dir}: the metric store has no metric rows yet; nothing to report")
    reference = reference_line(results_dir)
    if result is None and len(run_groups(df)) >= 2:
        result = compare(results_dir, df=df)
    detected = (lambda m: result.divergence_step(m)) if result is not None else (lambda m: None)
    headline = [m for m in headline_metrics(df) if not m.startswith("adapter/")]
    if "train/loss" in set(df["metric"]):
        headline.append("train/loss")
    adapter = [m for m in ADAPTER_FIGURES if m in set(df.loc[df["value"].notna(), "metric"])]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sections = [
        ("Runs", _table(run_table(results_dir, df))),
        ("When do the groups separate", _divergence_html(result)),
        ("Headline metrics", _figs(df, headline, reference, detected)),
        ("Adapter signals", _adapter_html(df, adapter, reference, detected)),
        ("Sample answers per checkpoint", sample_section(results_dir)),
        ("Evaluation lag and cost", "<h3>cost per evaluation (seconds per checkpoint)</h3>"
         + _table(evaluation_cost(df)) + "<h3>lag: checkpoint written to evaluation stored</h3>"
         + _table(lag_summary(evaluation_lag(results_dir)))),
    ]
    if result is not None and not result.onsets.empty:
        sections.insert(2, ("Onset per run", '<p class="note">First change point of each run\'s curve '
                            "(PELT); median and range over seeds, earliest first.</p>"
                            + _table(onset_order(result.onsets))))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(f"<h2>{html.escape(t)}</h2>{s}" for t, s in sections)
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>dynamics: "
                   f"{html.escape(str(results_dir))}</title><style>{CSS}</style></head><body>"
                   f"<h1>Training dynamics: {html.escape(str(results_dir))}</h1><p class='note'>{stamp}; "
                   f"{df['run'].nunique()} runs. Figures: per group the mean over seeds, shaded min-max; dashed: "
                   f"{html.escape(reference[1])}; solid black: where the groups separate (cluster permutation "
                   f"test).</p>{body}<script>{SCRIPT}</script></body></html>")
    return out


def _divergence_html(result) -> str:
    if result is None:
        return '<p class="note">One group of runs: nothing to compare.</p>'
    from dynamics.analysis.compare import seed_limit_note

    notes = "".join(f"<p class='note'>{html.escape(a)} vs {html.escape(b)}: {html.escape(seed_limit_note(d))}</p>"
                    for (a, b), d in result.divergence.groupby(["group_a", "group_b"], sort=False))
    cols = ["metric", "group_a", "group_b", "separates", "divergence_step", "p", "cluster_first", "cluster_last",
            "steps_tested", "n_a", "n_b"]
    return notes + _table(result.divergence[cols])


def _figs(df, metrics, reference, detected) -> str:
    if not metrics:
        return '<p class="note">(no metric values)</p>'
    return '<div class="figs">' + "".join(_img(metric_figure(df, m, reference, detected(m)), m)
                                          for m in metrics) + "</div>"


def _adapter_html(df, metrics, reference, detected) -> str:
    if not metrics:
        return ('<p class="note">No adapter evaluation stored: add it with <code>dynamics evaluate DIR '
                "--evals adapter</code>.</p>")
    pca = pca_figure(df)
    return (_figs(df, metrics, reference, detected)
            + ('<div class="figs">' + _img(pca, "adapter PCA") + "</div>" if pca is not None else ""))


__all__ = ["write_html_report", "metric_figure", "pca_figure"]
