"""The judge contract: every judge (API, local model, static analyser) answers in these shapes.

`score_0_100` asks the judge for a 0-100 number and aggregates its top-20 next-token distribution
(docs/METRICS.md section 2); `yes_no` asks a YES/NO question (section 1); `categorical` reads one word
of a fixed set off the same one-token distribution as a score (section 4). A judgment that could not be
made is a record with `error` set and `value`/`answer` None, never a silent zero.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
        """Tokens spent so far (prompt_tokens, completion_tokens, requests, cache_hits)."""
        return {}

    def close(self) -> None:
        pass
