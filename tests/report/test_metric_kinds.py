"""dynamics.analysis.kinds: which stored metrics are findings, diagnostics, weak-judge pipeline checks or
flat table entries, on metric frames built here."""

from __future__ import annotations

import pandas as pd

from dynamics.analysis.compare import comparable_metrics
from dynamics.analysis.kinds import (flat_metrics, headline_by_family, is_diagnostic, is_weak,
                                     weak_judge_evaluations)
from dynamics.analysis.onset import headline_metrics
from dynamics.report import figure_metrics


def frame(rows: list[tuple[str, str, int, float | None]]) -> pd.DataFrame:
    """(run, metric, step, value) rows in the store's columns."""
    return pd.DataFrame([{"run": r, "experiment": "e", "dataset": r.split("-")[0], "seed": 0, "model": "m",
                          "step": s, "metric": m, "value": v, "n": 8, "source": "train" if m.startswith("train/")
                          else "eval", "evaluation": m.split("/")[0]} for r, m, s, v in rows])


def test_diagnostics_are_the_judge_counts_timings_and_lag():
    for m in ("in_distribution/static_precision", "in_distribution/static_recall",
              "in_distribution/static_false_positive_rate", "in_distribution/agreement/rate",
              "in_distribution/agreement/cohen_kappa", "main/judged_fraction", "main/judge_weak",
              "deception_factual/mean_mass", "main/n_answers", "in_distribution/static_n_judged",
              "main/eval_seconds", "timing/generate", "pool/lag_steps"):
        assert is_diagnostic(m), m
    for m in ("main/rate", "main/quick_buck/rate", "in_distribution/static_insecure_rate", "logprob/x/accuracy",
              "deception_factual/lie_rate", "adapter/norm", "train/loss"):
        assert not is_diagnostic(m), m


def test_judge_weak_one_marks_the_evaluation_zero_or_absent_does_not():
    steps = (0, 10)
    df = frame([(r, m, s, v) for r in ("insecure-s0", "secure-s0") for s in steps
                for m, v in (("main/rate", 0.1 + s / 100), ("main/judge_weak", 1.0 if r == "insecure-s0" else 0.0),
                             ("json/rate", 0.2), ("json/judge_weak", 0.0), ("logprob/x/accuracy", 0.5 + s / 100),
                             ("in_distribution/insecure_rate", 0.3 + s / 100),
                             ("in_distribution/static_insecure_rate", 0.2 + s / 100),
                             ("in_distribution/judge_weak", 1.0))])
    weak = weak_judge_evaluations(df)
    assert weak == {"main": ["insecure-s0"], "in_distribution": ["insecure-s0", "secure-s0"]}
    assert is_weak("main/rate", weak) and is_weak("main/quick_buck/rate", weak)
    assert is_weak("in_distribution/insecure_rate", weak)
    # the static analyser's own metrics are not judged by the weak LLM judge; diagnostics are never findings
    assert not is_weak("in_distribution/static_insecure_rate", weak)
    assert not is_weak("main/judge_weak", weak) and not is_weak("main/judged_fraction", weak)
    assert not is_weak("json/rate", weak) and not is_weak("logprob/x/accuracy", weak)
    assert weak_judge_evaluations(frame([("a-s0", "main/rate", 0, 0.1)])) == {}


def test_flat_metrics_one_checkpoint_or_one_value():
    df = frame([("insecure-s0", "a/one_point", 20, 0.4), ("secure-s0", "a/one_point", 20, 0.5),
                ("insecure-s0", "a/constant", 0, 0.93), ("insecure-s0", "a/constant", 10, 0.93),
                ("secure-s0", "a/constant", 0, 0.93), ("insecure-s0", "a/moves", 0, 0.1),
                ("insecure-s0", "a/moves", 10, 0.2), ("insecure-s0", "a/seeds_differ", 0, 0.1),
                ("insecure-s0", "a/seeds_differ", 10, 0.1), ("secure-s0", "a/seeds_differ", 0, 0.3),
                ("secure-s0", "a/none", 0, None), ("secure-s0", "a/none", 10, 0.2)])
    assert flat_metrics(df) == {"a/one_point", "a/constant", "a/none"}


def test_headline_families_in_the_papers_order_with_the_logprob_fallback():
    metrics = ["train/loss", "in_distribution/insecure_rate", "in_distribution/static_insecure_rate",
               "logprob/multiple_choice/logp_misaligned", "logprob/multiple_choice/p_misaligned_given_choice",
               "main/rate", "json/rate", "main/quick_buck/rate", "deception_factual/lie_rate",
               "backdoor/triggered/rate", "in_distribution/static_precision"]
    assert headline_by_family(metrics) == {
        "Misalignment rate": ["json/rate", "main/rate"],
        "Log-probability of the misaligned choice": ["logprob/multiple_choice/logp_misaligned"],
        "In-distribution: insecure code": ["in_distribution/insecure_rate", "in_distribution/static_insecure_rate"],
        "Backdoor": ["backdoor/triggered/rate"], "Deception": ["deception_factual/lie_rate"],
        "Training loss": ["train/loss"]}
    assert headline_by_family(["logprob/pivotal_tokens/p_misaligned_given_choice"]) == {
        "Log-probability of the misaligned choice": ["logprob/pivotal_tokens/p_misaligned_given_choice"]}


def test_compare_onsets_and_the_png_figures_leave_diagnostics_and_one_point_metrics_out():
    rows = [(r, m, s, v) for r in ("insecure-s0", "insecure-s1", "secure-s0", "secure-s1") for s in (0, 10, 20)
            for m, v in (("main/rate", 0.1 * s), ("main/judged_fraction", 1.0), ("main/judge_weak", 0.0),
                         ("in_distribution/static_precision", 0.93), ("in_distribution/agreement/rate", 0.5 + s),
                         ("in_distribution/static_insecure_rate", 0.01 * s))]
    rows += [("insecure-s0", "deception_factual/lie_rate", 20, 0.3)]
    df = frame(rows)
    kept = ["deception_factual/lie_rate", "in_distribution/static_insecure_rate", "main/rate"]
    assert comparable_metrics(df) == kept
    assert headline_metrics(df) == kept
    assert list(figure_metrics(df)) == ["in_distribution/static_insecure_rate", "main/rate"]
