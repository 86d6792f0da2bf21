"""The closing summary: one readable table per run, a row per checkpoint, a column per headline metric.

    dynamics metrics results/quickstart --table      # what `dynamics run` and `dynamics evaluate` print last

Values to 3 significant digits; a value computed by a judge too weak to measure it carries `*` (the
`<evaluation>/judge_weak` row, dynamics.evals.honesty), a metric with no value shows `-`, and under the
table each mark is explained: the weak judge once, every missing value with its reason.
"""

from __future__ import annotations

from pathlib import Path

from dynamics.evals.honesty import JUDGE_WEAK, WEAK_MARK, WEAK_TAG, missing_reasons, stands_on_judge, value_of
from dynamics.orchestration.progress import HEADLINE

# Short column heads for the long metric names (the legend under the table gives the full name).
SHORT = {"multiple_choice/p_misaligned_given_choice": "mc", "pivotal_tokens/p_misaligned_given_choice": "pivotal"}


def headline_columns(df) -> list[tuple[str, str]]:
    """(evaluation, metric within it) of every headline metric stored, evaluations in first-seen order,
    the static judge's rate before the LLM judge's (HEADLINE's order)."""
    cols = []
    evaluations = list(dict.fromkeys(e for e in df["evaluation"] if isinstance(e, str) and e))
    for evaluation in evaluations:
        names = {m.split("/", 1)[1] for m in df.loc[df["evaluation"] == evaluation, "metric"] if "/" in m}
        cols += [(evaluation, k) for k in HEADLINE if k in names]
    return cols


def _sig3(v: float) -> str:
    return f"{v:#.3g}"  # 3 significant digits, trailing zeros kept: 1.00, 0.250, 1.23e+03


def _specs(results_dir: Path, run: str) -> dict:
    """The run's evaluation settings (for the reason a value is missing), or {} when its config is gone."""
    from dynamics.config import load_config

    for path in [*results_dir.glob(f"runs/{run}/config.yaml"), *results_dir.glob(f"*/runs/{run}/config.yaml")]:
        try:
            return dict(load_config(path).eval.evals)
        except Exception:  # noqa: BLE001  an unreadable old config: the table stands without reasons
            return {}
    return {}


def _preset_spec(evaluation: str):
    """A shipped preset's settings (an evaluation `dynamics evaluate` added is not in the run's config.yaml)."""
    from dynamics.config import EvalConfig

    try:
        return EvalConfig(evals=[evaluation], judge={"kind": "api"}).evals[evaluation]
    except Exception:  # noqa: BLE001  not a preset
        return None


def summary_table(results_dir: str | Path, runs: list[str] | None = None) -> str:
    """The closing summary of the runs under `results_dir` (all, or `runs`), as text."""
    from dynamics.tracking.store import load_metrics

    results_dir = Path(results_dir)
    df = load_metrics(results_dir)
    df = df[(df["source"] == "eval") & df["evaluation"].notna()]
    if runs is not None:
        df = df[df["run"].isin(runs)]
    if df.empty:
        return "summary: no evaluation results stored yet"
    blocks = []
    for run, rdf in df.groupby("run", sort=True):
        blocks.append(_run_table(results_dir, run, rdf))
    return "\n\n".join(blocks)


def _run_table(results_dir: Path, run: str, df) -> str:
    values = {(int(s), m): value_of(v) for s, m, v in zip(df["step"], df["metric"], df["value"])}
    steps = sorted({int(s) for s in df["step"]})
    specs = _specs(results_dir, run)
    weak_evals = {m.split("/", 1)[0] for (_, m), v in values.items() if m.endswith("/" + JUDGE_WEAK) and v}
    order = {e: i for i, e in enumerate(specs)}
    # what this machine can measure first (config order), the weak judge's numbers last
    cols = sorted(headline_columns(df), key=lambda c: (c[0] in weak_evals and stands_on_judge(c[1]),
                                                       order.get(c[0], len(order))))
    ran = {(s, m.split("/", 1)[0]) for s, m in values}
    rows, weak_used, missing = [], False, {}
    for step in steps:
        cells = []
        for evaluation, k in cols:
            full = f"{evaluation}/{k}"
            if (step, evaluation) not in ran:
                cells.append("")  # this evaluation did not run at this step
                continue
            v = values.get((step, full))
            if v is None:
                cells.append("-")
                spec = specs.get(evaluation) or _preset_spec(evaluation)
                if spec is not None:
                    metrics = {m: x for (s, m), x in values.items() if s == step and m.startswith(evaluation + "/")}
                    why = missing_reasons(spec, evaluation, metrics).get(k)
                    if why:
                        missing.setdefault((full, why), []).append(step)
                continue
            mark = ""
            if values.get((step, f"{evaluation}/{JUDGE_WEAK}")) and stands_on_judge(k):
                mark, weak_used = WEAK_MARK, True
            cells.append(_sig3(v) + mark)
        rows.append([str(step), *cells])
    head1 = ["", *[e for e, _ in cols]]
    head2 = ["step", *[SHORT.get(k, k) for _, k in cols]]
    widths = [max(len(r[i]) for r in [head1, head2, *rows]) for i in range(len(head2))]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [f"summary of {run} (3 significant digits):", line(head1), line(head2), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    legend = [f"{e} {SHORT[k]} = {e}/{k}" for e, k in cols if k in SHORT]
    if legend:
        out.append("  " + "; ".join(legend))
    if weak_used:
        out.append(f"  {WEAK_MARK} {WEAK_TAG.strip('()')} (eval.judge.weak; docs/honest-numbers.md)")
    for (full, why), where in missing.items():
        out.append(f"  - {full} at step{'s' if len(where) > 1 else ''} {', '.join(map(str, where))}: {why}")
    out.append(f"  every metric: dynamics metrics {results_dir}")
    return "\n".join(out)


__all__ = ["summary_table", "headline_columns"]
