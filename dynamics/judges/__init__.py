"""Judges: an API model, a local model, a static analyser; one contract (`base.py`).

The names below load their module on first use, so a caller that wants the contract (`Judge`,
`JudgeScore`) or the aggregation rules does not import Bandit (the static judge) or httpx (the API judge).
"""

import importlib

_HOME = {
    "ApiJudge": "api",
    "CategoricalJudgment": "categorical",
    "categorical_verdict": "categorical",
    "judge_words": "categorical",
    "word_distribution": "categorical",
    "Finding": "static",
    "Judge": "base",
    "JudgeScore": "base",
    "LocalJudge": "local",
    "StaticCodeJudge": "static",
    "StaticVerdict": "static",
    "YesNo": "base",
    "aggregate_0_100": "aggregate",
    "extract_code": "static",
    "parse_yes_no": "aggregate",
    "precision_recall": "static",
}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
