"""The experiment config: one YAML file, validated into one typed object that flows into every part.

    cfg = load_config("jobs/configs/quickstart.yaml", ["train.max_steps=40", "seed=1"])

A wrong key or value is refused with a `ConfigError` naming the file, the line, the key and what was
expected. Nothing in the project reads environment variables for experiment settings; the only
environment lookups are secrets (API keys), named here by the *variable name* only.

Modules: `sections` (model, data, lora, optim, train, sweep, wandb), `evals` (the `eval` section and its
named evaluations), `specs` and `presets` (what a named evaluation is, and the shipped ones), `evaluation`
(the metric families' settings and the judge), `legacy` (the migration message for old configs),
`analysis` (reference step, alert rules), `experiment` (the root object and the run's identities),
`loading` (YAML, overrides, error messages). Import from `dynamics.config`.
"""

from dynamics.config.base import ConfigError, Strict
from dynamics.config.evals import EvalConfig
from dynamics.config.evaluation import InDistributionEvalConfig, JudgeConfig, MisalignmentEvalConfig
from dynamics.config.experiment import ExperimentConfig, dataset_label
from dynamics.config.loading import apply_overrides, config_from_dict, load_config, parse_override
from dynamics.config.sections import (
    DataConfig, LoraConfig, ModelConfig, OptimConfig, SweepConfig, TrainConfig, WandbConfig,
)

__all__ = [
    "ConfigError", "DataConfig", "EvalConfig", "ExperimentConfig", "InDistributionEvalConfig", "JudgeConfig",
    "LoraConfig", "MisalignmentEvalConfig", "ModelConfig", "OptimConfig", "Strict",
    "SweepConfig", "TrainConfig", "WandbConfig", "apply_overrides", "config_from_dict", "dataset_label",
    "load_config", "parse_override",
]
