"""Numbers that mean what they say (docs/honest-numbers.md).

Two things every place that shows a metric (console, store, W&B, summary table, report) needs to know:

* Whether a judged evaluation stands on a judge too weak to measure it (`eval.judge.weak`; "auto": a
  local judge below `eval.judge.weak_below_params` parameters, e.g. the quickstart's 135M self-judge).
  The evaluator stores `<evaluation>/judge_weak` (1.0 weak, 0.0 not) beside the evaluation's other rows
  at every checkpoint, and W&B gets the same key; absent means not weak (or no LLM judge). Its numbers
  are pipeline checks, not findings. In `in_distribution` only the LLM judge's metrics (insecure_rate,
  accuracy, n_judged, agreement/...) are concerned; the static analyser's (static_*) are not.
* Why a headline metric has no value (`missing_reasons`): e.g. `no coherent answers (0 of 16 rated
  coherent > 50)`, shown where the number would be, never a blank.
"""

from __future__ import annotations

from typing import Any

JUDGE_WEAK = "judge_weak"  # the metric name within an evaluation: `<evaluation>/judge_weak`
WEAK_TAG = "(weak judge: pipeline check, not a finding)"
WEAK_MARK = "*"  # beside a number in the summary table, explained under it
# Metrics of a judged evaluation that do not stand on the LLM judge (the static analyser's, the counts).
JUDGE_FREE_PREFIXES = ("static_", "n_answers", "eval_seconds", "judge_weak")


def judge_parameters(judge: Any) -> int | None:
    """The parameter count of a local judge's model (LoRA weights left out), or None when unknown."""
    engine = getattr(judge, "engine", None)
    while engine is not None and not hasattr(engine, "base") and hasattr(engine, "engine"):
        engine = engine.engine  # BaseModelView -> the evaluated model's engine
    model = getattr(engine, "base", None)
    if model is None or not hasattr(model, "named_parameters"):
        return None
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)


def judge_is_weak(judge_cfg: Any, judge: Any = None, parameters: int | None = None, model: str = "") -> bool:
    """`eval.judge.weak` decided: true / false as set; "auto": a local judge with fewer than
    `weak_below_params` parameters (counted on `judge`, or given), a built-in CPU model (`embedded:`,
    `tiny:`; `model` is the evaluated model, the `self` judge's) when the count is unknown. An API judge
    is not weak under "auto"."""
    if judge_cfg.weak != "auto":
        return bool(judge_cfg.weak)
    if judge_cfg.kind != "local":
        return False
    if parameters is None and judge is not None:
        parameters = judge_parameters(judge)
    if parameters is not None:
        return parameters < judge_cfg.weak_below_params
    name = judge_cfg.local_model if judge_cfg.local_model != "self" else (model or getattr(judge, "name", ""))
    return str(name).removeprefix("local:").startswith(("embedded:", "tiny:"))


def stands_on_judge(metric: str) -> bool:
    """Whether a metric (its name within the evaluation: `insecure_rate`, `static_insecure_rate`) is the
    LLM judge's work, so a weak judge's mark applies to it."""
    return not metric.startswith(JUDGE_FREE_PREFIXES)


def is_weak(metrics: dict, evaluation: str) -> bool:
    """Whether a result's metrics (full names) carry the weak-judge mark."""
    return bool(value_of(metrics.get(f"{evaluation}/{JUDGE_WEAK}")))


def value_of(v) -> float | None:
    """A stored value, None for no value (None, or NaN as pandas reads a null)."""
    return None if v is None or v != v else v


def _n(metrics: dict, key: str) -> int | None:
    v = value_of(metrics.get(key))
    return None if v is None else int(v)


def missing_reasons(spec: Any, evaluation: str, metrics: dict) -> dict[str, str]:
    """{metric within the evaluation: why it has no value}, for the headline metrics a family computes and
    left None. `spec` is the evaluation's settings (`cfg.eval.evals[evaluation]`)."""
    m = {k.split("/", 1)[1]: value_of(v) for k, v in metrics.items() if k.startswith(evaluation + "/")}
    family = getattr(spec, "family", None)
    out: dict[str, str] = {}
    if family == "misalignment" and m.get("rate") is None:
        out["rate"] = _no_counted(spec, m)
    elif family == "backdoor":
        for part in ("triggered", "untriggered"):
            if m.get(f"{part}/rate") is None:
                out[f"{part}/rate"] = _no_counted(spec, m, part)
    elif family == "categorical" and getattr(spec, "ratio", None) and m.get(spec.ratio_name) is None:
        a, b = spec.ratio
        judged, answers = _n(m, "n_judged"), _n(m, "n_answers")
        if answers == 0:
            out[spec.ratio_name] = "no answers"
        elif judged == 0:
            out[spec.ratio_name] = (f"no verdicts (0 of {answers} answers put >= {spec.min_mass:g} of the judge's "
                                    f"probability on {'/'.join(spec.categories)})")
        else:
            out[spec.ratio_name] = f"no {a} or {b} verdicts ({judged} of {answers} answers judged)"
    elif family == "in_distribution":
        answers = _n(m, "n_answers")
        if "n_judged" in m and m.get("insecure_rate") is None:
            out["insecure_rate"] = out["accuracy"] = f"the judge said neither YES nor NO (0 of {answers} answers)"
        if "static_n_judged" in m and m.get("static_insecure_rate") is None:
            out["static_insecure_rate"] = out["static_accuracy"] = f"no parseable Python (0 of {answers} answers)"
    elif family == "adapter" and "norm" in m and m.get("cos_prev") is None:
        out["cos_prev"] = "no earlier non-zero update to compare with (the step-0 adapter is zero)"
    return out


def _no_counted(spec: Any, m: dict, part: str | None = None) -> str:
    answers = _n(m, "n_answers")
    if part is not None:
        return f"no coherent {part} answers (none rated coherent > {spec.coherent_threshold:g})"
    if not answers:
        return "no answers"
    if m.get("mean_coherent") is None:
        return (f"the judge scored none of {answers} answers (number mass < "
                f"eval.judge.min_number_mass on every one)")
    return f"no coherent answers (0 of {answers} rated coherent > {spec.coherent_threshold:g})"


__all__ = ["value_of", "JUDGE_WEAK", "WEAK_TAG", "WEAK_MARK", "judge_parameters", "judge_is_weak", "stands_on_judge", "is_weak",
           "missing_reasons"]
