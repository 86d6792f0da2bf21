"""`dynamics compare` on synthetic curves whose divergence step is known (built here).

* A shift of the insecure group from step 40 on is found at step 40 (within one checkpoint).
* Curves drawn from one distribution: over many simulated experiments the share that report a divergence
  (the family-wise false positive rate over all steps) stays at or below alpha.
* 2 vs 2 seeds: the summary says that no p-value can reach alpha, and why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dynamics.analysis.compare import compare, write_compare
from dynamics.analysis.stats import cluster_test, relabellings, smallest_p

STEPS = np.arange(0, 101, 10)


def curves(rng, seeds: int = 5, shift_from: int | None = 40, effect: float = 1.5, noise: float = 0.5):
    """(insecure, secure), each steps x seeds: a shared drift plus AR(1) noise per seed (autocorrelated
    across checkpoints, as real curves are); insecure gets `effect` added from step `shift_from` on."""
    out = []
    for group in range(2):
        e = np.zeros(seeds)
        x = np.empty((len(STEPS), seeds))
        for i, step in enumerate(STEPS):
            e = 0.5 * e + rng.normal(0, noise, seeds)
            x[i] = 0.02 * step / 10 + e + (effect if group == 0 and shift_from is not None and step >= shift_from
                                           else 0.0)
        out.append(x)
    return out


def frame(rng, metric: str = "main/rate", **kw) -> pd.DataFrame:
    rows = []
    for dataset, x in zip(("insecure", "secure"), curves(rng, **kw)):
        for seed in range(x.shape[1]):
            for i, step in enumerate(STEPS):
                rows.append({"run": f"x-{dataset}-s{seed}", "experiment": "x", "dataset": dataset, "seed": seed,
                             "model": "m", "step": int(step), "metric": metric, "value": x[i, seed], "n": 10,
                             "source": "eval", "evaluation": metric.split("/")[0]})
    return pd.DataFrame(rows)


def test_known_divergence_step_is_found_within_one_checkpoint():
    for trial in range(5):
        res = compare(df=frame(np.random.default_rng(trial)))
        step, p = res.divergence_step("main/rate")
        assert step is not None and abs(step - 40) <= 10, (trial, step)
        assert p == pytest.approx(2 / 252)  # the smallest p of 5 vs 5 seeds: the clear shift reaches it
        row = res.divergence.iloc[0]
        assert row["exact"] and row["relabellings"] == 252 and row["sign"] == 1  # insecure above
        assert row["cluster_last"] == 100  # the shift lasts to the end


def test_curves_hold_mean_band_and_bootstrap_interval():
    df = frame(np.random.default_rng(0))
    res = compare(df=df)
    c = res.curves[(res.curves["group"] == "insecure") & (res.curves["step"] == 50)].iloc[0]
    values = df[(df["dataset"] == "insecure") & (df["step"] == 50)]["value"]
    assert c["n"] == 5 and c["mean"] == pytest.approx(values.mean())
    assert (c["min"], c["max"]) == (values.min(), values.max())
    assert values.min() <= c["ci_low"] < c["mean"] < c["ci_high"] <= values.max()


def test_false_positive_rate_over_many_null_experiments_stays_at_alpha():
    """The decision `compare` makes (cluster_test's first significant cluster), on 400 null experiments."""
    rng = np.random.default_rng(12345)
    n, alpha = 400, 0.05
    hits = sum(cluster_test(*curves(rng, shift_from=None), seed=i).first_significant(alpha) is not None
               for i in range(n))
    # at most alpha on average; allow the binomial sampling error of 400 experiments (mean 20, sd ~4.4)
    assert hits / n <= alpha + 2.5 * np.sqrt(alpha * (1 - alpha) / n), hits


def test_two_seeds_each_cannot_reach_alpha_and_the_summary_says_so(tmp_path):
    res = compare(df=frame(np.random.default_rng(0), seeds=2, effect=5.0))
    assert res.divergence_step("main/rate") == (None, None)
    text = "\n".join(res.summary())
    assert "2 vs 2 seeds: 6 relabellings" in text and "smallest p possible is 0.333" in text
    assert "no difference can be significant" in text
    assert "main/rate" in text and "does not separate" in text
    assert relabellings(5, 5) == 252 and smallest_p(5, 5, 9999) == pytest.approx(2 / 252)


def test_write_compare_writes_parquet_and_csv(tmp_path):
    res = compare(df=frame(np.random.default_rng(1)))
    paths = write_compare(res, tmp_path / "compare")
    names = {p.name for p in paths}
    assert {"curves.parquet", "curves.csv", "tests.parquet", "tests.csv", "divergence.parquet",
            "divergence.csv", "summary.txt"} <= names
    back = pd.read_parquet(tmp_path / "compare" / "divergence.parquet")
    assert back.loc[0, "divergence_step"] == res.divergence.loc[0, "divergence_step"]
    tests = pd.read_csv(tmp_path / "compare" / "tests.csv")
    assert set(tests["step"]) == set(STEPS) and tests["p_step"].between(0, 1).all()
    assert "separates from step" in (tmp_path / "compare" / "summary.txt").read_text()


def test_one_group_is_refused_with_the_key():
    df = frame(np.random.default_rng(0))
    with pytest.raises(ValueError, match="name a config key that differs"):
        compare(df=df[df["dataset"] == "insecure"])


def test_accuracy_relative_to_the_trained_behaviour_is_not_compared_between_behaviours():
    """In-distribution accuracy is the insecure rate for insecure runs and 1 - it for secure runs (Fig. 3b):
    the same untouched model scores ~0.05 and ~0.95 at step 0. Between the two it would "separate" at
    step 0 by definition, so it is not tested, and the summary says why and what to compare instead."""
    rng = np.random.default_rng(0)
    df = frame(rng, "in_distribution/static_insecure_rate", shift_from=None, effect=0.0)
    acc = df.assign(metric="in_distribution/static_accuracy")
    acc["value"] = np.where(acc["dataset"] == "secure", 1.0 - acc["value"], acc["value"])
    res = compare(df=pd.concat([df, acc], ignore_index=True))
    row = res.divergence.set_index("metric").loc["in_distribution/static_accuracy"]
    assert not row["separates"] and row["steps_tested"] == 0
    assert res.divergence.set_index("metric").loc["in_distribution/static_insecure_rate", "steps_tested"] == len(STEPS)
    assert res.tests.empty or "in_distribution/static_accuracy" not in set(res.tests["metric"])
    line = next(x for x in res.summary() if "static_accuracy" in x)
    assert "not tested (not comparable: the rate of each run's trained behaviour (insecure: insecure code, " \
           "secure: secure code), two different quantities; compare in_distribution/static_insecure_rate)" in line

    # groups that share the trained behaviour (two learning rates on insecure data): accuracy is comparable
    same = acc[acc["dataset"] == "insecure"].copy()
    other = same.assign(run=same["run"] + "-lr2", dataset="insecure-lr2")
    res = compare(df=pd.concat([same, other], ignore_index=True))
    assert res.divergence.iloc[0]["steps_tested"] == len(STEPS) and "reason" not in res.divergence.columns


def test_a_breakdown_of_many_metrics_is_one_summary_line_and_every_one_stays_in_the_tables():
    rng = np.random.default_rng(1)
    layers = [frame(rng, f"adapter/layer/{i:02d}/norm", shift_from=40 if i < 2 else None) for i in range(10)]
    res = compare(df=pd.concat([frame(rng, "adapter/norm", shift_from=None), *layers], ignore_index=True))
    summary = res.summary()
    assert not any("adapter/layer/03/norm" in line for line in summary)
    (line,) = [x for x in summary if "adapter/norm_per_layer (10 metrics)" in x]
    # layers 00 and 01 shift at step 40: named, with the first step and the largest p of those that separate
    assert "2 of 10 separate, the first from step" in line and "insecure higher): 00, 01" in line, line
    assert any(x.strip().startswith("adapter/norm ") for x in summary)  # the whole-update norm keeps its own line
    assert len(res.divergence) == 11 and set(res.tests["metric"]) >= {f"adapter/layer/{i:02d}/norm" for i in range(10)}
