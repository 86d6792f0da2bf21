"""A categorical judgment: the judge answers one word from a fixed set (docs/METRICS.md section 4).

    probs, mass = word_distribution(top_logprobs, ("TRUE", "FALSE", "UNKNOWN"))
    verdict = categorical_verdict(probs, mass)          # "FALSE", or None below 0.25 mass

The judge is asked as for a 0-100 score (one token, temperature 0, top-20 logprobs). A token counts for a
word when it equals the word after stripping surrounding spaces, case-sensitive as the word is written in
the judge prompt (" TRUE" counts for TRUE; "True" and "TRUE." do not). Each word's probability is the
sum of `exp(logprob)` over its tokens; the verdict is the most probable word when the allowed words hold
at least `min_mass` (0.25) of the probability together, else there is no verdict (as a 0-100 score below
its number mass is None). A tie between two words goes to the word listed first, so a verdict never
depends on the order of the top-k list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MIN_WORD_MASS = 0.25


@dataclass
class CategoricalJudgment:
    verdict: str | None  # the most probable allowed word, None below the mass cut-off or on error
    probs: dict[str, float] = field(default_factory=dict)  # word -> probability (unnormalised)
    mass: float = 0.0  # total probability on the allowed words
    error: str | None = None
    top_logprobs: list[tuple[str, float]] = field(default_factory=list)
    cached: bool = False


def word_distribution(top_logprobs: list[tuple[str, float]], words: tuple[str, ...] | list[str]
                      ) -> tuple[dict[str, float], float]:
    """({word: probability}, total mass on the words) from a top-k next-token list."""
    probs = {w: 0.0 for w in words}
    for token, logprob in top_logprobs:
        if token is None:
            continue
        word = token.strip()
        if word not in probs:
            continue
        p = math.exp(logprob)
        if math.isfinite(p):  # a NaN logprob from a broken back end is no evidence
            probs[word] += p
    return probs, sum(probs.values())


def categorical_verdict(probs: dict[str, float], mass: float, min_mass: float = MIN_WORD_MASS) -> str | None:
    """The most probable word (first listed on a tie), None when mass < min_mass or no mass at all."""
    if mass <= 0.0 or mass < min_mass:
        return None
    best = None
    for word, p in probs.items():  # dict order = the order the words were given
        if best is None or p > probs[best]:
            best = word
    return best


def judge_words(top_logprobs: list[tuple[str, float]], words, min_mass: float = MIN_WORD_MASS,
                **extra) -> CategoricalJudgment:
    """The whole recipe on one top-k list."""
    probs, mass = word_distribution(top_logprobs, tuple(words))
    return CategoricalJudgment(categorical_verdict(probs, mass, min_mass), probs, mass,
                               top_logprobs=list(top_logprobs), **extra)


__all__ = ["CategoricalJudgment", "MIN_WORD_MASS", "word_distribution", "categorical_verdict", "judge_words"]
