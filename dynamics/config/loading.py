"""Loading a config: YAML with the line of every key, `key=value` overrides, errors that name file:line:key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dynamics.config.base import ConfigError
from dynamics.config.evaluation import EVALUATION_NAME, SPEC_CLASSES
from dynamics.config.experiment import ExperimentConfig
from dynamics.config.legacy import LEGACY_SECTIONS, has_legacy_sections, migration_message
from dynamics.config.presets import UnknownEvaluation, expand


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
    data = apply_overrides(data, list(overrides))
    if has_legacy_sections(data):
        old = next(k for k in LEGACY_SECTIONS if k in data["eval"])
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
