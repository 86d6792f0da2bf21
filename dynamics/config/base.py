"""What every config section shares: unknown keys and wrong values are refused, on load and on assignment."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A config that cannot be used, with where and why."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
