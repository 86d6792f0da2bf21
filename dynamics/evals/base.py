"""A metric family: one module per family, one shape shared by all of them.

The evaluator actor holds one `Engine` (the base model, loaded once) and a list of families. For each
checkpoint it activates the checkpoint's adapter and calls `family.evaluate(engine, ctx)` for every
family; each returns an `EvalResult` (metrics + the raw records they were computed from). Metric names
are `<family>/<name>`, e.g. `logprob/multiple_choice/logp_misaligned`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from dynamics.engines.base import Engine
from dynamics.records import EvalResult, RunInfo


@dataclass
class EvalContext:
    run: RunInfo
    step: int
    seed: int  # sampling seed for this checkpoint (derived from the run seed and step)
    extras: dict[str, Any] = field(default_factory=dict)


class MetricFamily(abc.ABC):
    name: str = "family"

    @abc.abstractmethod
    def evaluate(self, engine: Engine, ctx: EvalContext) -> EvalResult:
        ...

    def close(self) -> None:
        pass
