"""The experiment config: one YAML file, validated into one typed object that flows into every part.

    cfg = load_config("jobs/configs/quickstart.yaml", ["train.max_steps=40", "seed=1"])

A wrong key or value is refused with a `ConfigError` naming the file, the line, the key and what was
expected. Nothing in the project reads environment variables for experiment settings; the only
environment lookups are secrets (API keys), named here by the *variable name* only.

Modules: `sections` (model, data, lora, optim, train, sweep, wandb), `evaluation` (the `eval` section:
engine, judge and the named evaluations' settings), `presets` (the shipped named evaluations), `legacy`
(configs written before named evaluations), `experiment` (the root object and the run's identities), `loading` (YAML,
overrides, error messages). Import from `dynamics.config`.
"""

from dynamics.config.base import ConfigError, Strict
from dynamics.config.evaluation import (
    EVALUATION_NAME, FAMILIES, SPEC_CLASSES, BackdoorEval, CategoricalEval, EvalConfig, EvalSpec,
    InDistributionEval, InDistributionEvalConfig, JudgeConfig, LogprobEval, MisalignmentEval,
    MisalignmentEvalConfig,
)
from dynamics.config.presets import PRESETS, UnknownEvaluation
from dynamics.config.experiment import ExperimentConfig, dataset_label
from dynamics.config.loading import apply_overrides, config_from_dict, load_config, parse_override
from dynamics.config.sections import (
    DataConfig, LoraConfig, ModelConfig, OptimConfig, SweepConfig, TrainConfig, WandbConfig,
)

__all__ = [
    "EVALUATION_NAME", "FAMILIES", "PRESETS", "SPEC_CLASSES", "BackdoorEval", "CategoricalEval", "EvalSpec",
    "InDistributionEval", "LogprobEval", "MisalignmentEval", "UnknownEvaluation",
    "ConfigError", "DataConfig", "EvalConfig", "ExperimentConfig", "InDistributionEvalConfig", "JudgeConfig",
    "LoraConfig", "MisalignmentEvalConfig", "ModelConfig", "OptimConfig", "Strict",
    "SweepConfig", "TrainConfig", "WandbConfig", "apply_overrides", "config_from_dict", "dataset_label",
    "load_config", "parse_override",
]
