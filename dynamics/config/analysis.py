"""The `analysis` section of a run's config: the figures' reference line and the alert rules.

    analysis:
      reference_step: 40          # the paper's divergence step, drawn dashed in every figure (null: none)
      alerts:
        - {metric: main/rate, above: 0.2}                       # a threshold
        - {metric: main/rate, rise_over_step0: true}             # above step 0's upper 95% bound
        - {metric: adapter/cos_prev, below: 0.9, action: stop}   # the adapter rotates: stop training

A rule fires at the first checkpoint whose stored value meets it (once per rule and run). Firing prints a
console line, sends a W&B alert and writes a row to the store's alert table; `action: stop` also asks the
training loop to end at its next step (dynamics.analysis.alerts).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dynamics.config.base import Strict

DEFAULT_REFERENCE_STEP = 40  # Betley et al.: where secure and insecure runs start to diverge


class AlertRule(Strict):

    metric: str = Field(min_length=1)  # a stored metric name, as `dynamics metrics` prints it
    above: float | None = None
    below: float | None = None
    # Fires when the value exceeds step 0's `<metric>_ci_high` (its upper 95% bound), or step 0's value
    # itself for a metric stored without an interval.
    rise_over_step0: bool = False
    action: Literal["alert", "stop"] = "alert"
    name: str | None = None  # default: derived from the rule

    @model_validator(mode="after")
    def _one_condition(self):
        given = [k for k in ("above", "below") if getattr(self, k) is not None] + (
            ["rise_over_step0"] if self.rise_over_step0 else [])
        if len(given) != 1:
            raise ValueError(f"alert on {self.metric!r}: give exactly one of above, below, rise_over_step0 "
                             f"(got {given or 'none'})")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.rise_over_step0:
            return f"{self.metric} rose over step 0"
        return f"{self.metric} {'>' if self.above is not None else '<'} " \
               f"{self.above if self.above is not None else self.below:g}"


class AnalysisConfig(Strict):

    reference_step: int | None = Field(DEFAULT_REFERENCE_STEP, ge=0)
    reference_label: str = "paper: step 40"
    alerts: list[AlertRule] = Field(default_factory=list)


__all__ = ["AnalysisConfig", "AlertRule", "DEFAULT_REFERENCE_STEP"]
