"""The two shapes every metric, back end and sink shares.

A `MetricRow` is one number: (run, step, metric) -> value, with the run's identity (experiment,
dataset, seed, model) carried alongside so a table of rows needs no join to be plotted.
An `EvalRecord` is one raw observation a metric was computed from (a per-item log-probability,
a sampled answer with its judge scores, ...). Rows and records of one checkpoint are stored
together, so every number is traceable to what produced it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunInfo:
    """Identity of one training run: one (experiment, dataset, seed)."""

    experiment: str
    run_id: str
    dataset: str
    seed: int
    model: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MetricRow:
    run: str
    experiment: str
    dataset: str
    seed: int
    model: str
    step: int
    metric: str
    value: float | None
    n: int | None = None  # how many records the value aggregates (None for train scalars)

    @classmethod
    def make(cls, info: RunInfo, step: int, metric: str, value: float | None, n: int | None = None):
        if value is not None:
            value = float(value)
            if math.isnan(value):
                value = None
        return cls(info.run_id, info.experiment, info.dataset, info.seed, info.model, int(step), metric, value, n)


@dataclass
class EvalRecord:
    """One raw observation. `family` is the metric family (logprob, misalignment, in_distribution);
    `item_id` identifies the item within it; `data` holds the family's own fields (JSON-able)."""

    family: str
    item_id: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_row(self, info: RunInfo, step: int) -> dict[str, Any]:
        return {
            "run": info.run_id,
            "experiment": info.experiment,
            "dataset": info.dataset,
            "seed": info.seed,
            "model": info.model,
            "step": int(step),
            "family": self.family,
            "item_id": self.item_id,
            "data": json.dumps(self.data, sort_keys=True, ensure_ascii=False, allow_nan=False, default=_jsonable),
        }


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


@dataclass
class EvalResult:
    """What evaluating one checkpoint with one metric family returns."""

    metrics: dict[str, float | None]
    records: list[EvalRecord]
    counts: dict[str, int] = field(default_factory=dict)  # metric -> n records behind it
    seconds: float = 0.0
