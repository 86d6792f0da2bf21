"""Loading a config: YAML with the line of every key, `key=value` overrides, errors that name file:line:key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dynamics.config.base import ConfigError
from dynamics.config.experiment import ExperimentConfig


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
        key = ".".join(str(p) for p in e["loc"])
        line = None
        for n in range(len(loc), 0, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        where = "command-line override" if loc in overridden else (f"{source}:{line}" if line else source)
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
            parent = ExperimentConfig
            for p in loc[:-1]:
                ann = parent.model_fields[p].annotation if p in parent.model_fields else None
                parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
                if parent is None:
                    break
            if parent is not None:
                msg += f"; expected one of: {', '.join(sorted(parent.model_fields))}"
        else:
            msg = f"{e['msg']} (got {e.get('input')!r})"
        out.append(f"{where}: key {key!r}: {msg}")
    return "invalid config:\n  " + "\n  ".join(out)


def config_from_dict(data: dict, source: str = "<config>", lines: dict | None = None,
                     overrides: list[str] = ()) -> ExperimentConfig:
    data = apply_overrides(data, list(overrides))
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
