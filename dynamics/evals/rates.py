"""Pooled rates over questions and their bootstrap intervals, shared by every judged family.

An answer carries a flag: True (it has the property: misaligned, a lie, ...), False (it counts and has
not), or None (it does not count: incoherent, no verdict, a category outside the ratio). Per checkpoint:
- rate = True / (True + False), pooled over the questions (None when nothing counts);
- its percentile bootstrap interval, stratified by question: each replicate resamples, within every
  question, as many answers as that question has (counted or not, with replacement), and recomputes the
  pooled rate; replicates where nothing counts are left out. This is the treatment of the misalignment
  rate (docs/METRICS.md section 2), written once so every rate gets the same one.
- the interval of a difference of two such rates (e.g. with and without a backdoor trigger): the two
  conditions are resampled independently within each replicate (they are separate samples), and the
  interval is taken over the replicates' differences.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

Flags = Mapping[str, list]  # question id -> its answers' flags (True / False / None), in answer order


def pooled_rate(groups: Flags) -> tuple[float | None, int]:
    """(True / counted, counted) over every question."""
    hits = sum(f is True for flags in groups.values() for f in flags)
    counted = sum(f is not None for flags in groups.values() for f in flags)
    return (hits / counted if counted else None), counted


def per_group_rates(groups: Flags) -> dict[str, tuple[float | None, int]]:
    return {qid: pooled_rate({qid: flags}) for qid, flags in groups.items()}


def _replicates(groups: Flags, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(hits, counted) of each replicate; groups are visited in insertion order (deterministic)."""
    hits_total = np.zeros(n_boot)
    counted_total = np.zeros(n_boot)
    for flags in groups.values():
        if not flags:
            continue
        counted = np.array([f is not None for f in flags], dtype=float)
        hits = np.array([f is True for f in flags], dtype=float)
        idx = rng.integers(0, len(flags), size=(n_boot, len(flags)))
        hits_total += hits[idx].sum(axis=1)
        counted_total += counted[idx].sum(axis=1)
    return hits_total, counted_total


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    if values.size == 0:
        return None, None
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def rate_interval(groups: Flags, n_boot: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the pooled rate, resampling answers within each question."""
    if n_boot <= 0 or not any(groups.values()):
        return None, None
    hits, counted = _replicates(groups, n_boot, np.random.default_rng(seed))
    ok = counted > 0
    return _percentiles(hits[ok] / counted[ok], confidence)


def difference_interval(a: Flags, b: Flags, n_boot: int = 1000, seed: int = 0,
                        confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of rate(a) - rate(b), the two resampled independently."""
    if n_boot <= 0 or not any(a.values()) or not any(b.values()):
        return None, None
    rng = np.random.default_rng(seed)
    hits_a, counted_a = _replicates(a, n_boot, rng)
    hits_b, counted_b = _replicates(b, n_boot, rng)
    ok = (counted_a > 0) & (counted_b > 0)
    return _percentiles(hits_a[ok] / counted_a[ok] - hits_b[ok] / counted_b[ok], confidence)


def group_flags(items: Iterable[tuple[str, bool | None]]) -> dict[str, list]:
    """{question id: [flags]} from (question id, flag) pairs, questions in order of first appearance."""
    out: dict[str, list] = {}
    for qid, flag in items:
        out.setdefault(qid, []).append(flag)
    return out


def rate_metrics(prefix: str, groups: Flags, n_boot: int, seed: int
                 ) -> tuple[dict[str, float | None], dict[str, int]]:
    """`<prefix>rate`, `<prefix>rate_ci_low`, `<prefix>rate_ci_high` and `<prefix><qid>/rate`, with counts."""
    rate, counted = pooled_rate(groups)
    lo, hi = rate_interval(groups, n_boot, seed)
    metrics = {f"{prefix}rate": rate, f"{prefix}rate_ci_low": lo, f"{prefix}rate_ci_high": hi}
    counts = {k: counted for k in metrics}
    for qid, (r, n) in per_group_rates(groups).items():
        metrics[f"{prefix}{qid}/rate"] = r
        counts[f"{prefix}{qid}/rate"] = n
    return metrics, counts


__all__ = ["pooled_rate", "per_group_rates", "rate_interval", "difference_interval", "group_flags",
           "rate_metrics"]
