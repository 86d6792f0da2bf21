"""The judge contract: every judge (API, local model, static analyser) answers in these shapes.

`score_0_100` asks the judge for a 0-100 number and aggregates its top-20 next-token distribution
(docs/METRICS.md section 2); `yes_no` asks a YES/NO question (section 1); `categorical` reads one word
of a fixed set off the same one-token distribution as a score (section 4). A judgment that could not be
made is a record with `error` set and `value`/`answer` None, never a silent zero.
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dynamics.judges.categorical import CategoricalJudgment


@dataclass
class JudgeScore:
    value: float | None  # the probability-weighted 0..100 score, None below the number-mass cut-off
    mass: float = 0.0  # total probability on tokens that parse as integers 0..100
    error: str | None = None  # why no judgment was made (HTTP failure, ...)
    top_logprobs: list[tuple[str, float]] = field(default_factory=list)
    cached: bool = False


@dataclass
class YesNo:
    answer: str | None  # "YES", "NO", or None when the judge said anything else / failed
    raw: str = ""
    error: str | None = None
    cached: bool = False


class Judge(abc.ABC):
    name: str = "judge"
    USAGE = ("prompt_tokens", "completion_tokens", "requests", "cache_hits")

    def __init__(self, extra_usage: tuple[str, ...] = ()):
        self._usage = dict.fromkeys((*self.USAGE, *extra_usage), 0)
        self._usage_lock = threading.Lock()

    @abc.abstractmethod
    def score_0_100(self, prompts: list[str]) -> list[JudgeScore]:
        """One score per prompt (each prompt is a complete single user message)."""

    def yes_no(self, prompts: list[str]) -> list[YesNo]:
        raise NotImplementedError(f"{type(self).__name__} does not answer YES/NO prompts")

    def categorical(self, prompts: list[str], words: tuple[str, ...],
                    min_mass: float = 0.25) -> list["CategoricalJudgment"]:
        """One word of `words` per prompt, read off the judge's distribution (`dynamics.judges.categorical`)."""
        raise NotImplementedError(f"{type(self).__name__} does not answer categorical prompts")

    @property
    def usage(self) -> dict[str, int]:
        """Tokens spent so far (prompt_tokens, completion_tokens, requests, cache_hits, and a judge's own
        counters); empty for a judge that counts nothing."""
        lock = getattr(self, "_usage_lock", None)
        if lock is None:
            return {}
        with lock:
            return dict(self._usage)

    def _count(self, **deltas: int) -> None:
        """Add to the usage counters; safe from many threads."""
        with self._usage_lock:
            for key, n in deltas.items():
                self._usage[key] += n

    # A lock does not pickle: a judge sent to a Ray actor gets a fresh one.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_usage_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._usage_lock = threading.Lock()

    def close(self) -> None:
        pass
