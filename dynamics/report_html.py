"""One self-contained HTML page of an experiment: open it in any browser, no server, no other file.

    from dynamics.report_html import write_html_report
    write_html_report("results/cpu_sweep", "results/cpu_sweep/figures/report.html")

The page is written for the researcher who reads it top down:
  * What ran: the runs, their groups, the model, the judge, the checkpoints (every run's row folded);
  * Do the groups separate?: per pair of groups, which metrics separate and from which step (the cluster
    permutation test of `dynamics compare`), the seeds' limit on p, and per headline metric the test and
    each group's onset (median [min-max] over seeds);
  * Headline figures: each family's figures in the paper's form (misalignment rate, log-probability of the
    misaligned choice, in-distribution insecure-code rate, ..., the training loss): per group the mean over
    seeds with the min-max band, the dashed reference step (`analysis.reference_step`) and the detected
    divergence step (solid);
  * Per evaluation: the rest of each evaluation's curves and its per-question small multiples;
  * Adapter signals, every comparison (the divergence and onset tables), sample answers per checkpoint;
  * Diagnostics: the judge's coverage, strength and calibration, the two code judges' agreement, counts,
    cost and lag: tables, never drawn as training curves (dynamics.analysis.kinds).
A metric judged by a judge marked too weak (`<evaluation>/judge_weak` = 1) is never a finding: it is left
out of the summary and the headline figures and shown under "Pipeline check (weak judge)". A metric with one
checkpoint, or one value at every checkpoint, is a table entry, not a curve. Figures are PNGs embedded as
base64. A small script writes what the browser laid out into `<body data-*>`: the images it decoded, the tables,
and where the summary and the first headline figure end (the headless test reads them: both on the first
screen).
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

CSS = """body{font-family:system-ui,sans-serif;margin:1.2em auto;max-width:1220px;color:#222;padding:0 12px}
h1{font-size:22px;margin:.2em 0}h2{font-size:18px;border-bottom:2px solid #ddd;padding-bottom:3px;margin-top:1.4em}
h3{font-size:15px;margin:1em 0 .3em}table{border-collapse:collapse;margin:.4em 0 1em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}th{background:#f0f0f0}
table.kv th{width:110px}table.kv td{width:40%}table.kv{width:100%}section#what-ran h2,section#separation h2{margin-top:.6em}
.figs{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:8px}figure{margin:0}
figure img{width:100%;border:1px solid #eee}figure.wide{grid-column:1/-1}figcaption{font-size:12px;color:#444}figcaption.family{font-weight:600;color:#222}
.note{color:#555;font-size:13px}td.answer{max-width:520px;white-space:pre-wrap}tr.bad{background:#fde8e8}
details{margin:.3em 0}p.finding{margin:.3em 0;padding:4px 10px;border-left:4px solid #2a6ebb;background:#f3f7fc}
.weak{border:2px dashed #c88a00;background:#fffaf0;padding:6px 10px;margin:.4em 0}
.weak-label{color:#8a5a00;font-weight:600;font-size:13px}"""
SCRIPT = """window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.imagesDecoded=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
document.body.dataset.tables=document.querySelectorAll('table').length;
const top=s=>{const e=document.querySelector(s);return e?Math.round(e.getBoundingClientRect().bottom+scrollY):-1};
document.body.dataset.separationBottom=top('#separation');
document.body.dataset.firstFigureBottom=top('#headline figure img');
document.body.dataset.diagnosticsTop=top('#diagnostics h2');});"""
ADAPTER_FIGURES = ("adapter/norm", "adapter/cos_prev", "adapter/cos_final", "adapter/step_norm")


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def _img(fig: Figure, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _asks_llm_judge(configs, stored_evaluations: set[str]) -> bool:
    """Whether any evaluation of these run configs (or one stored but in no config, e.g. added by a
    backfill) asks the LLM judge: log-prob and adapter never do, in_distribution only with "llm" in its
    `judges` (dynamics.config.specs.needs_llm_judge on the stored settings)."""
    from types import SimpleNamespace

    from dynamics.config.evaluation import InDistributionEvalConfig
    from dynamics.config.specs import needs_llm_judge

    default_judges = InDistributionEvalConfig.model_fields["judges"].default_factory()
    listed = {}
    for cfg in configs:
        for name, spec in (((cfg.get("eval") or {}).get("evals")) or {}).items():
            listed[name] = spec if isinstance(spec, dict) else {}
    if stored_evaluations - set(listed):
        return True  # an evaluation no config describes: its judge is unknown, say the configured one
    return any(needs_llm_judge(SimpleNamespace(family=spec.get("family", ""),
                                               judges=spec.get("judges", default_judges)))
               for spec in listed.values())


def _reasons(d: "pd.DataFrame") -> dict[str, str]:
    """{metric: why it is not compared} for the rows of a divergence table that `compare` left untested
    on purpose (a metric relative to each run's trained behaviour, between groups trained differently)."""
    if "reason" not in d.columns:
        return {}
    return {m: r for m, r in zip(d["metric"], d["reason"]) if isinstance(r, str) and r}


def _table(df: pd.DataFrame, max_rows: int = 200, float_format: str = "{:.4g}") -> str:
    if df is None or df.empty:
        return '<p class="note">(none)</p>'
    shown = df.head(max_rows)
    shown = shown.map(lambda v: "" if v is None else v)  # None in an object column: empty, as NaN is
    more = f'<p class="note">{len(df) - max_rows} more rows in the tables on disk</p>' if len(df) > max_rows else ""
    return shown.to_html(index=False, na_rep="", float_format=lambda v: float_format.format(v),
                         escape=True, border=0) + more


def metric_figure(df: pd.DataFrame, metric: str, reference: tuple[int | None, str], detected=None) -> Figure:
    """plot_metric with the reference line from config and the detected divergence step (solid)."""
    fig = Figure(figsize=(6.4, 3.1), layout="constrained")
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
    from dynamics.analysis.kinds import weak_judge_evaluations
    from dynamics.analysis.runs import analysis_frame, reference_line, run_groups

    df = analysis_frame(results_dir)
    if df.empty:
        raise ValueError(f"{results_dir}: the metric store has no metric rows yet; nothing to report")
    reference = reference_line(results_dir)
    groups = run_groups(df)
    if result is None and len(groups) >= 2:
        result = compare(results_dir, df=df)
    page = _Page(results_dir, df, reference, result, groups, weak_judge_evaluations(df))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page.html())
    return out


class _Page:
    """The report's sections, from one metric frame and its comparison."""

    def __init__(self, results_dir, df, reference, result, groups, weak):
        from dynamics.analysis.kinds import flat_metrics

        self.results_dir, self.df, self.reference, self.result = results_dir, df, reference, result
        self.groups, self.weak = groups, weak
        self.flat = flat_metrics(df)
        self.valued = set(df.loc[df["value"].notna(), "metric"])

    def detected(self, metric):
        return self.result.divergence_step(metric) if self.result is not None else None

    def html(self) -> str:
        sections = [("what-ran", "What ran", self.what_ran()),
                    ("separation", "Do the groups separate?", self.separation()),
                    ("headline", "Headline figures", self.headline()),
                    ("evaluations", "Per evaluation", self.per_evaluation()),
                    ("adapter", "Adapter signals", self.adapter()),
                    ("statistics", "Every comparison", self.statistics()),
                    ("samples", "Sample answers per checkpoint", sample_section(self.results_dir)),
                    ("diagnostics", "Diagnostics", self.diagnostics())]
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        nav = " · ".join(f'<a href="#{i}">{html.escape(t)}</a>' for i, t, _ in sections[2:])
        body = "".join(f'<section id="{i}"><h2>{html.escape(t)}</h2>{s}</section>' for i, t, s in sections)
        title = html.escape(str(self.results_dir))
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>dynamics: {title}</title>"
                f"<style>{CSS}</style></head><body><h1>Training dynamics: {title}</h1>"
                f"<p class='note'>{stamp} · {nav}</p>{body}<script>{SCRIPT}</script></body></html>")

    # --- the top of the page -------------------------------------------------------------------------
    def what_ran(self) -> str:
        from dynamics.analysis.runs import run_table

        df = self.df
        evals = df[(df["source"] == "eval") & df["value"].notna()]
        steps = sorted(evals["step"].dropna().unique())
        checkpoints = (f"{len(steps)} evaluated (steps {_steps(steps)})" if steps else "none evaluated yet")
        train = df[df["source"] == "train"]
        trained = f"; trained to step {int(train['step'].max())}" if not train.empty else ""
        rows = [
            ("runs", f"{df['run'].nunique()} in {df['experiment'].nunique()} experiment(s): "
                     + ", ".join(sorted(df["experiment"].dropna().astype(str).unique()))),
            ("groups (by dataset)", ", ".join(f"<b>{html.escape(g)}</b> ({len(r)} seed{'s' * (len(r) != 1)})"
                                              for g, r in self.groups.items())),
            ("model", html.escape(", ".join(sorted(df["model"].dropna().astype(str).unique())))),
            ("judge", html.escape(self.judge())),
            ("evaluations", html.escape(", ".join(sorted(evals["evaluation"].dropna().astype(str).unique())))),
            ("checkpoints", checkpoints + trained),
        ]
        cells = [f"<th>{k}</th><td>{v}</td>" for k, v in rows]
        if len(cells) % 2:
            cells.append("<th></th><td></td>")
        table = "".join(f"<tr>{a}{b}</tr>" for a, b in zip(cells[::2], cells[1::2]))
        return (f'<table class="kv">{table}</table><details><summary>every run (config keys that differ, '
                f"last steps, done)</summary>{_table(run_table(self.results_dir, df))}</details>")

    def judge(self) -> str:
        from dynamics.analysis.runs import run_configs

        configs = run_configs(self.results_dir)
        if configs and not _asks_llm_judge(configs.values(), set(self.df["evaluation"].dropna())):
            return ("none: no evaluation here asks an LLM judge"
                    + (" (in_distribution: the static code analyser alone)" if any(
                        "in_distribution" in ((c.get("eval") or {}).get("evals") or {}) for c in configs.values())
                       else ""))
        seen = []
        for cfg in configs.values():
            j = ((cfg.get("eval") or {}).get("judge") or {})
            kind = j.get("kind", "api")
            text = {"api": f"API: {j.get('model', 'gpt-4o-2024-08-06')}",
                    "local": "local: " + ("the evaluated base model itself" if j.get("local_model", "self") == "self"
                                          else str(j.get("local_model"))),
                    "none": "none"}.get(kind, kind)
            if j.get("min_number_mass") not in (None, 0.25) and kind != "none":
                text += f" (number-mass cut-off {j['min_number_mass']:g}, the paper's 0.25)"
            if text not in seen:
                seen.append(text)
        text = "; ".join(seen) or "unknown (no run config stored)"
        if self.weak:
            text += (" · too weak to measure " + ", ".join(self.weak)
                     + ": those metrics are a pipeline check, not findings")
        return text

    def separation(self) -> str:
        from dynamics.analysis.compare import seed_limit_note
        from dynamics.analysis.kinds import is_weak
        from dynamics.report import breakdown_figure

        weak_note = ""
        if self.weak:
            weak_note = ('<p class="weak-label">Pipeline check (weak judge): ' + ", ".join(
                f"<code>{html.escape(e)}</code>" for e in self.weak) + " was judged by a judge marked too weak to "
                "measure it (<code>&lt;evaluation&gt;/judge_weak</code>); its judged metrics are left out of the "
                'findings and shown under <a href="#evaluations">Per evaluation</a>.</p>')
        if self.result is None:
            return '<p class="note">One group of runs: nothing to compare.</p>' + weak_note
        res = self.result
        div = res.divergence
        div = div[[not is_weak(m, self.weak) for m in div["metric"]]]
        parts = []
        for (a, b), d in div.groupby(["group_a", "group_b"], sort=False):
            apart = _reasons(d)  # metrics not comparable between these groups (and why): out of the count
            d = d[~d["metric"].isin(apart)]
            sep = d[d["separates"]].sort_values(["divergence_step", "metric"])
            found = []
            for step, at in sep.groupby("divergence_step", sort=True):
                breakdowns = [m for m in at["metric"] if breakdown_figure(m)]
                names = [f"<code>{html.escape(m)}</code>" for m in at["metric"] if m not in breakdowns]
                names += [f"{len(breakdowns)} per-question"] if breakdowns else []
                found.append(f"from step {int(step)} (p &le; {at['p'].max():.3g}): " + ", ".join(names))
            verdict = (f"<b>{len(sep)} of {len(d)}</b> metrics separate<br>" + "<br>".join(found) if len(sep)
                       else f"<b>none of the {len(d)}</b> metrics separate")
            not_compared = "".join(f"<br><span class='note'>Not compared: <code>{html.escape(m)}</code>, "
                                   f"{html.escape(why)}</span>" for m, why in apart.items())
            parts.append(f"<p class='finding'><b>{html.escape(a)} vs {html.escape(b)}</b>: {verdict}<br>"
                         f"<span class='note'>{html.escape(seed_limit_note(d))}</span>{not_compared}</p>")
        return "".join(parts) + weak_note + ('<p class="note">Each headline figure\'s caption gives its test '
                                             "and each group's onset (the first change point of each run's "
                                             "curve, PELT: median [min-max] over seeds).</p>")

    def verdict(self, metric: str) -> str:
        """The caption line of a headline figure: the first pair's test and each group's onset."""
        from dynamics.analysis.compare import describe

        if self.result is None:
            return ""
        d = self.result.divergence
        d = d[d["metric"] == metric]
        if d.empty:
            return ""
        r = d.iloc[0]
        onset = self.onset_lookup()
        onsets = "; ".join(f"onset {g}: {onset[(g, metric)]}" for g in self.groups if (g, metric) in onset)
        test = html.escape(describe(r, r["group_a"], r["group_b"]))
        test = f"<b>{test}</b>" if r["separates"] else test
        return test + (f"<br>{html.escape(onsets)}" if onsets else "")

    def onset_lookup(self) -> dict:
        from dynamics.analysis.onset import onset_order

        if self.result is None or self.result.onsets.empty:
            return {}
        out = {}
        for r in onset_order(self.result.onsets).itertuples():
            out[(r.group, r.metric)] = (f"step {r.median:g} [{r.min:g}-{r.max:g}] ({r.changed}/{r.runs})"
                                        if r.changed else f"no change (0/{r.runs})")
        return out

    def headline(self) -> str:
        from dynamics.analysis.kinds import headline_by_family, is_weak

        families = headline_by_family(self.valued)
        figs, flat = [], []
        for family, metrics in families.items():
            for m in metrics:
                if is_weak(m, self.weak):
                    continue
                if m in self.flat:
                    flat.append((family, m))
                else:
                    figs.append(_figure(metric_figure(self.df, m, self.reference, self.detected(m)), m,
                                        family, self.verdict(m)))
        from dynamics.report import no_values

        empty = [m for ms in headline_by_family(no_values(self.df)).values() for m in ms]
        if not figs and not flat:
            return ('<p class="note">No headline metric with a value stored yet.</p>'
                    + (_no_value_note(empty) if empty else ""))
        out = ""
        if figs:
            out = (f'<p class="note">Per group the mean over seeds, shaded min-max; dashed: '
                   f"{html.escape(self.reference[1])}; solid black: where the groups separate (cluster "
                   'permutation test).</p><div class="figs">' + "".join(figs) + "</div>")
        if flat:
            out += ('<p class="note">Flat (one checkpoint, or one value at every checkpoint): a table entry, '
                    "not a curve.</p>" + _table(self.stat_table([m for _, m in flat])))
        return (_no_value_note(empty) if empty else "") + out

    # --- per evaluation ------------------------------------------------------------------------------
    def per_evaluation(self) -> str:
        from dynamics.analysis.kinds import evaluation_of, headline_family, is_diagnostic, is_weak
        from dynamics.report import CI_SUFFIXES, breakdown_figure, plot_grid

        by_eval: dict[str, list[str]] = {}
        for m in sorted(self.valued):
            if is_diagnostic(m) or m.endswith(CI_SUFFIXES) or m.startswith(("adapter/", "train/")):
                continue
            by_eval.setdefault(evaluation_of(m), []).append(m)
        from dynamics.report import no_values

        empty: dict[str, list[str]] = {}
        for m in no_values(self.df):
            if not is_diagnostic(m) and not m.endswith(CI_SUFFIXES) and not m.startswith(("adapter/", "train/")):
                empty.setdefault(evaluation_of(m), []).append(m)
                by_eval.setdefault(evaluation_of(m), [])
        if not by_eval:
            return '<p class="note">(no evaluation stored)</p>'
        parts = []
        for ev, metrics in sorted(by_eval.items()):
            weak = ev in self.weak
            curves, grids, flat, shown_above = [], {}, [], []
            for m in metrics:
                grid = breakdown_figure(m)
                if m in self.flat:
                    flat.append(m)
                elif grid:
                    grids.setdefault(grid, []).append(m)
                elif headline_family(m) and not is_weak(m, self.weak):
                    shown_above.append(m)
                else:
                    curves.append(_figure(metric_figure(self.df, m, self.reference, self.detected(m)), m))
            for name, ms in grids.items():
                fig = plot_grid(self.df, ms, fig=Figure(layout="constrained"), title=name,
                                divergence_step=self.reference[0])
                curves.append(f'<figure class="wide">{_img(fig, name)}</figure>')
            body = ""
            if shown_above:
                body += ('<p class="note">In the headline figures: ' + ", ".join(
                    f"<code>{html.escape(m)}</code>" for m in shown_above) + "</p>")
            if curves:
                body += '<div class="figs">' + "".join(curves) + "</div>"
            if flat:
                body += ('<p class="note">Flat (one checkpoint, or one value at every checkpoint):</p>'
                         + _table(self.stat_table(flat)))
            if ev in empty:
                body += _no_value_note(empty[ev])
            if weak:
                judged = [m for m in metrics + empty.get(ev, []) if is_weak(m, self.weak)]
                which = (f" Its judged metrics ({len(judged)}: {html.escape(', '.join(judged[:6]))}"
                         f"{' ...' if len(judged) > 6 else ''}) show that the pipeline runs, not what the model "
                         "does." if judged else "")
                body = (f'<div class="weak"><p class="weak-label">Pipeline check (weak judge): the judge of '
                        f"<code>{html.escape(ev)}</code> is marked too weak to measure it "
                        f"({html.escape(self.runs_of(ev))}).{which}</p>{body}</div>")
            parts.append(f'<h3 id="eval-{html.escape(ev)}">{html.escape(ev)}</h3>{body}')
        return "".join(parts)

    def runs_of(self, ev: str) -> str:
        runs = self.weak[ev]
        if len(runs) == self.df["run"].nunique():
            return f"every run, {len(runs)}"
        return "runs: " + ", ".join(runs)

    def adapter(self) -> str:
        metrics = [m for m in ADAPTER_FIGURES if m in self.valued]
        if not metrics:
            return ('<p class="note">No adapter evaluation stored: add it with <code>dynamics evaluate DIR '
                    "--evals adapter</code>.</p>")
        figs = [_figure(metric_figure(self.df, m, self.reference, self.detected(m)), m) for m in metrics
                if m not in self.flat]
        pca = pca_figure(self.df)
        if pca is not None:
            figs.append(_figure(pca, "adapter PCA"))
        flat = [m for m in metrics if m in self.flat]
        return ('<div class="figs">' + "".join(figs) + "</div>"
                + ('<p class="note">Flat (one checkpoint, or one value at every checkpoint):</p>'
                   + _table(self.stat_table(flat)) if flat else ""))

    def statistics(self) -> str:
        from dynamics.analysis.kinds import is_weak
        from dynamics.analysis.onset import onset_order

        if self.result is None:
            return '<p class="note">One group of runs: nothing to compare.</p>'
        cols = ["metric", "group_a", "group_b", "separates", "divergence_step", "p", "cluster_first",
                "cluster_last", "steps_tested", "n_a", "n_b"]
        d = self.result.divergence[cols].copy()
        why = self.result.divergence.get("reason", pd.Series([None] * len(d), index=d.index))
        d["note"] = ["weak judge: pipeline check" if is_weak(m, self.weak) else (r if isinstance(r, str) else "")
                     for m, r in zip(d["metric"], why)]
        d = d.sort_values(["note", "separates", "metric"], ascending=[True, False, True], kind="stable")
        out = ('<p class="note">Cluster-based permutation test over seeds per metric and pair of groups '
               "(family-wise over steps); the divergence step is the first step of the first significant "
               "cluster. Weak-judge metrics last.</p>" + _table(d))
        if not self.result.onsets.empty:
            out += ("<h3>Onset per run</h3><p class='note'>First change point of each run's curve (PELT); median "
                    "and range over seeds, earliest first.</p>" + _table(onset_order(self.result.onsets)))
        return out

    # --- diagnostics ---------------------------------------------------------------------------------
    def diagnostics(self) -> str:
        from dynamics.analysis.costs import evaluation_cost, evaluation_lag, lag_summary
        from dynamics.analysis.kinds import CALIBRATION, COVERAGE, WEAK, is_count, is_diagnostic
        from dynamics.report import no_values

        leaf = {m: m.rsplit("/", 1)[-1] for m in self.valued}
        coverage = [m for m in self.valued if leaf[m] in COVERAGE]
        weak = [m for m in self.valued if leaf[m] == WEAK]
        calibration = [m for m in self.valued if leaf[m] in CALIBRATION]
        agreement = [m for m in self.valued if "/agreement/" in m]
        counts = [m for m in self.valued if is_count(m) and is_diagnostic(m)]
        parts = [
            ("Judge coverage", "the share of answers the judge scored (<code>judged_fraction</code>; n = the "
             "answers) and the categorical judge's mean word mass", coverage),
            ("Judge strength", "<code>&lt;evaluation&gt;/judge_weak</code> = 1: the judge is too weak to measure "
             "that evaluation; its judged metrics are a pipeline check", weak),
            ("Static judge calibration", "precision, recall and false-positive rate of the static analyser on "
             "the labelled datasets: constants of the judge, the same at every checkpoint", calibration),
            ("Agreement of the two code judges", "on the answers both judged (n)", agreement),
            ("Counts", "records behind each metric", counts),
        ]
        out = []
        for title, what, ms in parts:
            if ms:
                out.append(f"<h3>{title}</h3><p class='note'>{what}.</p>{_table(self.stat_table(sorted(ms)))}")
        out.append("<h3>Cost per evaluation (seconds per checkpoint)</h3>" + _table(evaluation_cost(self.df)))
        out.append("<h3>Lag: checkpoint written to evaluation stored</h3>"
                   + _table(lag_summary(evaluation_lag(self.results_dir))))
        empty = no_values(self.df)
        if empty:
            out.append("<h3>Stored without a value</h3>" + _no_value_note(empty))
        return "".join(out)

    def stat_table(self, metrics: list[str]) -> pd.DataFrame:
        """Per metric: runs, checkpoints, and its min / mean / max over every run and checkpoint, the
        last checkpoint's mean over runs, and its n (the records behind it) where stored."""
        rows = []
        d = self.df[self.df["metric"].isin(metrics) & self.df["value"].notna()]
        for m, g in d.groupby("metric", sort=False):
            last = g[g["step"] == g["step"].max()]
            rows.append({"metric": m, "runs": g["run"].nunique(), "checkpoints": g["step"].nunique(),
                         "min": g["value"].min(), "mean": g["value"].mean(), "max": g["value"].max(),
                         "last step": int(g["step"].max()), "mean at last step": last["value"].mean(),
                         "n": int(g["n"].max()) if g["n"].notna().any() else None})
        out = pd.DataFrame(rows)
        return out.set_index("metric").reindex([m for m in metrics if m in set(out["metric"])]).reset_index() \
            if not out.empty else out


def _no_value_note(metrics: list[str]) -> str:
    return ("<p class='note'>Stored without a value (every value is None, e.g. every answer fell below the "
            "judge's number-mass cut-off; see the records): "
            + ", ".join(f"<code>{html.escape(m)}</code>" for m in metrics) + "</p>")


def _figure(fig: Figure, alt: str, caption: str | None = None, verdict: str = "") -> str:
    """A figure with its family above it and its test below it (`verdict` is HTML)."""
    cap = f'<figcaption class="family">{html.escape(caption)}</figcaption>' if caption else ""
    below = f"<figcaption>{verdict}</figcaption>" if verdict else ""
    return f"<figure>{cap}{_img(fig, alt)}{below}</figure>"


def _steps(steps) -> str:
    steps = [int(s) for s in steps]
    return ", ".join(map(str, steps)) if len(steps) <= 6 else f"{steps[0]}, {steps[1]}, ..., {steps[-1]}"


__all__ = ["write_html_report", "metric_figure", "pca_figure"]
