"""Configs written before named evaluations: `eval.logprob`, `eval.misalignment`, `eval.in_distribution`.

A config file in that form is refused with the `eval.evals` block that says the same thing
(`migration_message`); a stored run's `config.yaml` (written by an older dynamics, e.g. a finished study
that `dynamics evaluate` now extends) is converted silently (`migrate`), since the user did not write it.
"""

from __future__ import annotations

import copy

import yaml

from dynamics.config.presets import PRESETS

LEGACY_SECTIONS = ("logprob", "misalignment", "in_distribution")


def has_legacy_sections(data: dict) -> bool:
    ev = data.get("eval")
    return isinstance(ev, dict) and any(k in ev for k in LEGACY_SECTIONS)


def _misalignment_name(section: dict) -> str:
    variant, wrapper = section.get("variant"), section.get("wrapper", "none")
    if wrapper == "evil_numbers_suffix":
        return "evil_numbers"
    if wrapper == "evil_numbers_prefix_suffix":
        return "evil_numbers_prefix"
    if variant:
        return variant
    if section.get("question_ids") == "all" and "preregistered" in str(section.get("questions_file", "")):
        return "preregistered"
    return "main"


def _minimal(name: str, settings: dict) -> dict:
    """The settings that differ from the preset `name` (all of them, with `family`, if none fits)."""
    base = PRESETS.get(name)
    if base is None or base["family"] != settings.get("family"):
        return settings
    return {k: v for k, v in settings.items() if k != "family" and base.get(k, _MISSING) != v
            and not (k not in base and v == _DEFAULTS.get(base["family"], {}).get(k, _MISSING))}


_MISSING = object()
_DEFAULTS: dict[str, dict] = {}


def _family_defaults() -> dict[str, dict]:
    if not _DEFAULTS:
        from dynamics.config.evaluation import InDistributionEval, LogprobEval, MisalignmentEval

        _DEFAULTS["logprob"] = LogprobEval().model_dump(mode="json")
        _DEFAULTS["misalignment"] = MisalignmentEval().model_dump(mode="json")
        _DEFAULTS["in_distribution"] = InDistributionEval().model_dump(mode="json")
    return _DEFAULTS


def convert(eval_section: dict) -> tuple[dict, dict]:
    """(the eval section in the new form, the evals block with only non-default settings)."""
    _family_defaults()
    ev = copy.deepcopy(eval_section)
    evals, shown = {}, {}
    for key, family in (("logprob", "logprob"), ("misalignment", "misalignment"),
                        ("in_distribution", "in_distribution")):
        section = ev.pop(key, None)
        if section is None:  # absent in the old form meant: on, with the defaults
            section = {}
        section = dict(section)
        if not section.pop("enabled", True):
            continue
        if key == "logprob" and "batch_size" in section:
            ev.setdefault("batch_size", section.pop("batch_size"))
        if key == "misalignment":
            name = _misalignment_name(section)
        elif key == "in_distribution":
            name = "in_distribution_greedy" if section.get("temperature") == 0 else "in_distribution"
        else:
            name = "logprob"
        settings = {"family": family, **{k: v for k, v in section.items()}}
        base = PRESETS[name]
        full = {**base, **settings}
        evals[name] = {k: v for k, v in full.items() if k != "family" and base.get(k, _MISSING) != v}
        shown[name] = _minimal(name, full)
    ev["evals"] = evals
    return ev, shown


def migrate(data: dict) -> dict:
    """A stored config dict in the old form, converted (a new-form dict is returned unchanged)."""
    if not has_legacy_sections(data):
        return data
    data = copy.deepcopy(data)
    data["eval"], _ = convert(data["eval"])
    return data


def migration_message(data: dict, where: str) -> str:
    _, shown = convert(data["eval"])
    found = [k for k in LEGACY_SECTIONS if k in data["eval"]]
    block = yaml.safe_dump({"eval": {"evals": shown}}, sort_keys=False, default_flow_style=None)
    return (f"{where}: key 'eval.{found[0]}': the per-family eval sections ({', '.join('eval.' + k for k in found)}) "
            "were replaced by named evaluations in eval.evals (see dynamics/config/presets.py for the shipped "
            "ones); this config says the same as:\n"
            + "\n".join("    " + line for line in block.rstrip().splitlines())
            + "\n  (keep the judge, engine and pool settings under eval; `enabled: false` means: leave it out)")


__all__ = ["has_legacy_sections", "migrate", "migration_message", "convert", "LEGACY_SECTIONS"]
