"""The experiment config: the root object, its sections, and the run identities derived from it."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, field_validator

from dynamics.config.analysis import AnalysisConfig
from dynamics.config.base import Strict
from dynamics.config.evals import EvalConfig
from dynamics.config.sections import (
    DataConfig, LoraConfig, ModelConfig, OptimConfig, SweepConfig, TrainConfig, WandbConfig,
)


class ExperimentConfig(Strict):
    name: str = "quickstart"
    seed: int = 0
    output_dir: str = "results"
    # the experiment's folder when it is not `output_dir/name`: an experiment moved after training keeps
    # its name (its run ids, W&B ids and stored rows); `dynamics evaluate` sets this to where it is now
    folder: str | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)  # figures' reference step, alert rules

    @field_validator("name")
    @classmethod
    def _name_is_a_path_part(cls, v: str) -> str:
        if not v or any(c in v for c in "/\\ ") or v.startswith("."):
            raise ValueError("must be a non-empty name without '/', '\\', spaces or a leading '.'")
        return v

    # -- derived identities -------------------------------------------------------------------
    @property
    def dataset_name(self) -> str:
        return dataset_label(self.data.dataset)

    @property
    def run_id(self) -> str:
        """Deterministic id of one (experiment, dataset, seed): the W&B id and the run folder."""
        return f"{self.name}-{self.dataset_name}-s{self.seed}"

    @property
    def experiment_dir(self) -> Path:
        if self.folder:
            return Path(self.folder).expanduser().resolve()
        return Path(self.output_dir).expanduser().resolve() / self.name

    @property
    def run_dir(self) -> Path:
        return self.experiment_dir / "runs" / self.run_id

    def resolved(self, base: str | Path | None = None) -> "ExperimentConfig":
        """The same config with every relative path made absolute against `base` (default: the current
        directory). The driver calls this before the config travels to Ray workers and actors, whose
        working directories are not the driver's."""
        base = Path(base or Path.cwd())

        def absolute(p: str | None) -> str | None:
            return None if p is None else str((base / Path(p).expanduser()).resolve())

        data = self.model_dump(mode="json")
        data["output_dir"] = absolute(self.output_dir)
        data["data"]["data_dir"] = absolute(self.data.data_dir)
        data["model"]["cache_dir"] = absolute(self.model.cache_dir)
        data["eval"]["judge"]["cache_dir"] = absolute(self.eval.judge.cache_dir)
        for section, key in (("data", "dataset"), ("model", "name")):
            value = data[section][key]
            if (value.startswith((".", "~")) or "/" in value) and (base / value).expanduser().exists():
                data[section][key] = absolute(value)
        return ExperimentConfig.model_validate(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def dataset_label(dataset: str) -> str:
    """A short, path-safe label for a dataset name or path (`quickstart:insecure` -> `quickstart-insecure`)."""
    name = Path(dataset).stem if dataset.endswith(".jsonl") else dataset
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
