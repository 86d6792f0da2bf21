"""What each stored metric is to a reader: a finding, a diagnostic, or a pipeline check.

* **Diagnostics** describe the measurement, not the model's training dynamics, and are never drawn as
  training curves: the judge's coverage (`<evaluation>/judged_fraction`, the categorical judge's
  `mean_mass`), its strength (`<evaluation>/judge_weak`), the static judge's calibration constants
  (`static_precision`, `static_recall`, `static_false_positive_rate`: the same number at every checkpoint by
  construction), the two judges' agreement (`<evaluation>/agreement/*`), counts (`n_answers`, ...),
  timings (`*_seconds`, `timing/*`) and lag.
* **Weak judge.** An evaluation whose judge is too weak to measure it (the quickstart's 135M model judging
  itself) is marked in the store by the metric `<evaluation>/judge_weak` = 1.0 (absent or 0.0: not weak).
  Its judged metrics test the pipeline, not the science: the report shows them under "pipeline check
  (weak judge)", never as findings. The static analyser's metrics of that evaluation (`static_*`) are not
  judged by the LLM judge and stay findings.
* **Flat** metrics (one checkpoint with a value, or one value at every checkpoint) are table entries, not
  curves.
* **Headline** metrics are the paper's figures, by family (`HEADLINE_FAMILIES`).
* **Relative to the trained behaviour:** the in-distribution `accuracy` / `static_accuracy` (Fig. 3b) is
  the insecure rate for runs trained on insecure code and 1 - it for runs trained on secure code. Between
  groups trained on different behaviours it compares two different quantities (the untouched model
  "separates" at step 0), so `compare` does not test it there; `insecure_rate` is the comparable one.
"""

from __future__ import annotations

import re

import pandas as pd

from dynamics.evals.honesty import JUDGE_WEAK as WEAK  # one name for the mark, written and read

CALIBRATION = ("static_false_positive_rate", "static_precision", "static_recall")
COVERAGE = ("judged_fraction", "mean_mass")
LAG = ("lag_s", "lag_steps", "checkpoints_behind")
# (family title, pattern of its headline metrics); the log-prob family prefers the paper's plotted
# `logp_misaligned` and falls back to `p_misaligned_given_choice` where a store has only that.
HEADLINE_FAMILIES = (
    ("Misalignment rate", re.compile(r"^(?!in_distribution|backdoor|deception)[^/]+/rate$")),
    ("Log-probability of the misaligned choice", re.compile(r"^logprob/[^/]+/logp_misaligned$")),
    ("Log-probability of the misaligned choice", re.compile(r"^logprob/[^/]+/p_misaligned_given_choice$")),
    ("In-distribution: insecure code", re.compile(r"^in_distribution[^/]*/(static_)?insecure_rate$")),
    ("Backdoor", re.compile(r"^backdoor[^/]*/(triggered|untriggered)/rate$")),
    ("Deception", re.compile(r"^deception_factual[^/]*/lie_rate$")),
    ("Training loss", re.compile(r"^train/loss$")),
)


BEHAVIOUR_RELATIVE = re.compile(r"^in_distribution[^/]*/(static_)?accuracy$")


def is_behaviour_relative(metric: str) -> bool:
    """A metric defined relative to each run's trained behaviour (in-distribution accuracy, Fig. 3b)."""
    return bool(BEHAVIOUR_RELATIVE.match(metric))


def evaluation_of(metric: str) -> str:
    return metric.split("/", 1)[0]


def is_count(metric: str) -> bool:
    """`main/n_answers`, `in_distribution/static_n_judged`: how many records, not dynamics."""
    last = metric.rsplit("/", 1)[-1]
    return last.startswith("n_") or "_n_" in last


def is_diagnostic(metric: str) -> bool:
    """Judge coverage, strength, calibration and agreement, counts, timings and lag."""
    leaf = metric.rsplit("/", 1)[-1]
    return (metric.startswith(("timing/", "pool/")) or leaf.endswith("_seconds") or leaf in CALIBRATION
            or leaf in COVERAGE or leaf == WEAK or leaf in LAG or "/agreement/" in metric or is_count(metric))


def weak_judge_evaluations(df: pd.DataFrame) -> dict[str, list[str]]:
    """{evaluation: the runs whose judge of it is marked too weak (`<evaluation>/judge_weak` = 1 at some
    checkpoint)}."""
    rows = df[df["metric"].str.endswith("/" + WEAK) & (df["value"].fillna(0.0) >= 0.5)]
    out: dict[str, list[str]] = {}
    for metric, g in rows.groupby("metric", sort=True):
        out[metric.removesuffix("/" + WEAK)] = sorted(g["run"].astype(str).unique())
    return out


def is_weak(metric: str, weak: dict[str, list[str]] | set[str]) -> bool:
    """A metric of a weak-judged evaluation that the LLM judge decides (not a diagnostic, not `static_*`)."""
    return (evaluation_of(metric) in weak and not is_diagnostic(metric)
            and not metric.rsplit("/", 1)[-1].startswith("static_"))


def flat_metrics(df: pd.DataFrame) -> set[str]:
    """Metrics with a value at one step only, or the same value at every step of every run."""
    valued = df[df["value"].notna()]
    g = valued.groupby("metric")
    steps, lo, hi = g["step"].nunique(), g["value"].min(), g["value"].max()
    return set(steps.index[(steps <= 1) | (hi - lo <= 1e-12 * (1 + hi.abs()))])


def headline_family(metric: str) -> str | None:
    for title, pattern in HEADLINE_FAMILIES:
        if pattern.match(metric):
            return title
    return None


def headline_by_family(metrics) -> dict[str, list[str]]:
    """{family title: its headline metrics among `metrics`}, in the paper's order (misalignment,
    log-prob, in-distribution, ..., the training loss)."""
    present = set(metrics)
    out: dict[str, list[str]] = {}
    for title, pattern in HEADLINE_FAMILIES:
        if title in out:  # a fallback pattern of a family that already has its preferred metrics
            continue
        found = sorted(m for m in present if pattern.match(m))
        if found:
            out[title] = found
    return out


__all__ = ["is_diagnostic", "is_count", "weak_judge_evaluations", "is_weak", "flat_metrics", "headline_family",
           "headline_by_family", "evaluation_of", "CALIBRATION", "COVERAGE", "WEAK", "HEADLINE_FAMILIES"]
