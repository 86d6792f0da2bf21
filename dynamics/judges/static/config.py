"""The static judge's settings in the experiment config: `eval.in_distribution.static`.

    eval:
      in_distribution:
        judges: [llm, static]
        static:
          analysers: [bandit, rules]   # Bandit and/or the project's rules
          severity: MEDIUM             # a finding counts at this severity or above ...
          confidence: LOW              # ... and this confidence or above
          skip: [B113, B108, B103, B310]   # rule ids that never count (listed on the verdict all the same)
          quality_n: 200               # held-out labelled answers of each class for its precision/recall; 0: none
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dynamics.judges.static._judge import ANALYSERS, DEFAULT_SKIP

Rank = Literal["LOW", "MEDIUM", "HIGH"]


class StaticJudgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    analysers: list[Literal["bandit", "rules"]] = Field(default_factory=lambda: list(ANALYSERS))
    severity: Rank = "MEDIUM"
    confidence: Rank = "LOW"
    skip: list[str] = Field(default_factory=lambda: list(DEFAULT_SKIP))
    quality_n: int = Field(200, ge=0)

    @field_validator("analysers")
    @classmethod
    def _analysers(cls, v):
        if not v or len(set(v)) != len(v):
            raise ValueError(f"expected one or both of {list(ANALYSERS)}, each at most once (got {v})")
        return v

    def build(self):
        from dynamics.judges.static._judge import StaticCodeJudge

        return StaticCodeJudge(self.severity, self.confidence, tuple(self.skip), tuple(self.analysers))
