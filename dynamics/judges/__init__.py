"""Judges: an API model, a local model, a static analyser; one contract (`base.py`)."""

from dynamics.judges.aggregate import aggregate_0_100, parse_yes_no
from dynamics.judges.api import ApiJudge
from dynamics.judges.base import Judge, JudgeScore, YesNo
from dynamics.judges.categorical import CategoricalJudgment, categorical_verdict, judge_words, word_distribution
from dynamics.judges.local import LocalJudge
from dynamics.judges.static import Finding, StaticCodeJudge, StaticVerdict, extract_code, precision_recall

__all__ = [
    "ApiJudge",
    "CategoricalJudgment",
    "categorical_verdict",
    "judge_words",
    "word_distribution",
    "Finding",
    "Judge",
    "JudgeScore",
    "LocalJudge",
    "StaticCodeJudge",
    "StaticVerdict",
    "YesNo",
    "aggregate_0_100",
    "extract_code",
    "parse_yes_no",
    "precision_recall",
]
