"""The statistics behind `dynamics compare` (docs/METRICS.md section 5), on arrays of shape (steps, seeds).

Seeds (runs) are the unit of resampling: every test relabels whole runs between the two groups, so the
steps of one run stay together and the dependence between a run's checkpoints is kept.

* `seed_bootstrap`: a percentile bootstrap 95% interval of a group's mean over its seeds, per step
  (scipy.stats.bootstrap).
* `step_permutation_p`: at each step, the permutation test of the difference of group means
  (scipy.stats.permutation_test; exact, over every relabelling, when they number `max_resamples` or fewer:
  5 vs 5 seeds give C(10, 5) = 252). Uncorrected: one p-value per step.
* `cluster_test`: the family-wise correction over steps, a cluster-based permutation test (Maris &
  Oostenveld 2007, J. Neurosci. Methods 164:177). At each step a Welch t of the difference; runs of
  consecutive steps whose |t| passes the cluster-forming threshold (Student's t critical value at
  `threshold_alpha`, df = n_a + n_b - 2) with one sign form clusters, each weighed by its sum of |t|. The
  null distribution is the largest cluster weight of each relabelling of the runs (scipy.stats.
  permutation_test with that statistic), so P(any cluster of a null experiment is significant) <= alpha:
  the test controls the family-wise error over all steps. The cluster-forming threshold only sets the
  sensitivity, not the error rate. Caveat (Sassenhagen & Draschkow 2019): the test says *that* the groups
  differ within a cluster; the cluster's first step is an estimate of the onset, not itself a tested claim.

How few seeds limit the p-value: with n_a vs n_b seeds there are C(n_a + n_b, n_a) relabellings; the
observed one and, for equal groups, its mirror image both reach the observed statistic, so the smallest
possible p is 2 / C(n_a + n_b, n_a) (1 / C for unequal groups). 2 vs 2 seeds: 6 relabellings, p >= 0.33.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

T_CAP = 1e6  # |t| of a nonzero difference between two groups that each have zero spread


def relabellings(n_a: int, n_b: int) -> int:
    return math.comb(n_a + n_b, n_a)


def smallest_p(n_a: int, n_b: int, max_resamples: int) -> float:
    """The smallest p-value a two-sided permutation test over n_a vs n_b seeds can give."""
    n = relabellings(n_a, n_b)
    if n > max_resamples:
        return 1.0 / (max_resamples + 1)
    return (2.0 if n_a == n_b else 1.0) / n


def seed_bootstrap(values: np.ndarray, confidence: float = 0.95, n_resamples: int = 2000,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per row (step), the percentile bootstrap interval of the mean over the row's non-NaN seeds
    (NaN where fewer than 2 seeds have a value)."""
    low = np.full(values.shape[0], np.nan)
    high = np.full(values.shape[0], np.nan)
    rng = np.random.default_rng(seed)
    counts = np.sum(~np.isnan(values), axis=1)
    for n in np.unique(counts[counts >= 2]):  # one vectorised call per seed count (usually one)
        rows = np.flatnonzero(counts == n)
        data = np.stack([values[i][~np.isnan(values[i])] for i in rows])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rows with no spread: scipy warns; their interval is the value
            res = stats.bootstrap((data,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                  method="percentile", rng=rng, vectorized=True, axis=-1)
        flat = data.min(axis=1) == data.max(axis=1)
        low[rows] = np.where(flat, data[:, 0], res.confidence_interval.low)
        high[rows] = np.where(flat, data[:, 0], res.confidence_interval.high)
    return low, high


def _mean_difference(a, b, axis):
    return a.mean(axis=axis) - b.mean(axis=axis)


def step_permutation_p(a: np.ndarray, b: np.ndarray, max_resamples: int = 9999, seed: int = 0) -> np.ndarray:
    """Two-sided permutation p-value of mean(a) - mean(b) at each step; a, b: (steps, seeds), no NaN."""
    res = stats.permutation_test((a, b), _mean_difference, permutation_type="independent", vectorized=True,
                                 axis=-1, n_resamples=max_resamples, alternative="two-sided",
                                 rng=np.random.default_rng(seed))
    return np.atleast_1d(res.pvalue)


def welch_t(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Welch's t of mean(a) - mean(b) along `axis`; a zero-spread difference gets +-T_CAP (0 if equal)."""
    diff = a.mean(axis=axis) - b.mean(axis=axis)
    se = np.sqrt(a.var(axis=axis, ddof=1) / a.shape[axis] + b.var(axis=axis, ddof=1) / b.shape[axis])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.sign(diff) * T_CAP)
    return t


def cluster_threshold(n_a: int, n_b: int, threshold_alpha: float = 0.05) -> float:
    return float(stats.t.ppf(1 - threshold_alpha / 2, df=n_a + n_b - 2))


def max_cluster_mass(t: np.ndarray, threshold: float) -> np.ndarray:
    """The largest cluster weight (sum of |t| over consecutive same-sign supra-threshold steps) along the
    last axis; vectorised over any leading (resample) axes."""
    best = np.zeros(t.shape[:-1])
    for sign in (1.0, -1.0):
        inside = sign * t > threshold
        mass = np.where(inside, np.abs(t), 0.0)
        total = np.cumsum(mass, axis=-1)
        # the running total where the current cluster began: cumsum is non-decreasing, so the last
        # value outside a cluster is the running maximum of the totals at outside steps
        start = np.maximum.accumulate(np.where(inside, 0.0, total), axis=-1)
        best = np.maximum(best, (total - start).max(axis=-1))
    return best


def find_clusters(t: np.ndarray, threshold: float) -> list[tuple[int, int, float, int]]:
    """The clusters of a 1-D t: (first index, last index, weight, sign), in step order."""
    out, i = [], 0
    while i < len(t):
        sign = 1 if t[i] > threshold else (-1 if t[i] < -threshold else 0)
        if sign == 0:
            i += 1
            continue
        j = i
        while j + 1 < len(t) and sign * t[j + 1] > threshold:
            j += 1
        out.append((i, j, float(np.abs(t[i:j + 1]).sum()), sign))
        i = j + 1
    return out


@dataclass
class Cluster:
    first: int  # index into the steps tested
    last: int
    mass: float
    sign: int  # +1: group a above group b
    p: float


@dataclass
class ClusterResult:
    t: np.ndarray
    threshold: float
    clusters: list[Cluster]
    n_relabellings: int
    n_resamples: int  # relabellings drawn (== n_relabellings when exact)
    exact: bool
    min_p: float
    null: np.ndarray = field(repr=False)

    def first_significant(self, alpha: float) -> Cluster | None:
        return next((c for c in self.clusters if c.p <= alpha), None)


def cluster_test(a: np.ndarray, b: np.ndarray, threshold_alpha: float = 0.05, max_resamples: int = 9999,
                 seed: int = 0) -> ClusterResult:
    """The cluster-based permutation test over steps; a, b: (steps, seeds) with no NaN, >= 2 seeds each."""
    n_a, n_b = a.shape[1], b.shape[1]
    thr = cluster_threshold(n_a, n_b, threshold_alpha)

    def statistic(x, y, axis):
        return max_cluster_mass(welch_t(x, y, axis=axis), thr)

    res = stats.permutation_test((a, b), statistic, permutation_type="independent", vectorized=True, axis=-1,
                                 n_resamples=max_resamples, alternative="greater",
                                 rng=np.random.default_rng(seed))
    null = np.asarray(res.null_distribution)
    n_rel = relabellings(n_a, n_b)
    exact = n_rel <= max_resamples
    t = welch_t(a, b)
    clusters = []
    for first, last, mass, sign in find_clusters(t, thr):
        hits = int(np.sum(null >= mass * (1 - 1e-12)))
        # exact: the null holds every relabelling, the observed one included; drawn: count the observed too
        p = hits / len(null) if exact else (hits + 1) / (len(null) + 1)
        clusters.append(Cluster(first, last, mass, sign, min(1.0, p)))
    return ClusterResult(t, thr, clusters, n_rel, len(null), exact, smallest_p(n_a, n_b, max_resamples), null)


__all__ = ["seed_bootstrap", "step_permutation_p", "welch_t", "cluster_test", "ClusterResult", "Cluster",
           "relabellings", "smallest_p", "max_cluster_mass", "find_clusters", "cluster_threshold"]
