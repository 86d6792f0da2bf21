"""The family behind each named evaluation of a config (`eval.evals`), and the judge they share."""

from __future__ import annotations

import logging

from dynamics.config import ExperimentConfig
from dynamics.config.specs import needs_llm_judge
from dynamics.data.registry import DataUnavailable, resolve
from dynamics.engines.base import BaseModelView, Engine
from dynamics.evals.base import MetricFamily

log = logging.getLogger(__name__)


def build_judge(cfg: ExperimentConfig, engine: Engine):
    j = cfg.eval.judge
    if j.kind == "none":
        return None
    if j.kind == "api":
        from dynamics.judges.api import ApiJudge

        return ApiJudge(j.base_url, j.model, api_key_env=j.api_key_env, max_concurrency=j.max_concurrency,
                        max_retries=j.max_retries, timeout=j.timeout_s, cache_dir=j.cache_dir,
                        min_mass=j.min_number_mass)
    from dynamics.judges.local import LocalJudge

    if j.local_model == "self":
        return LocalJudge(BaseModelView(engine), name=f"{cfg.model.name} (base)", min_mass=j.min_number_mass,
                          number_mode=j.local_number_mode)
    from dynamics.engines.hf import HFEngine

    return LocalJudge(HFEngine.load(j.local_model, dtype=cfg.model.dtype, cache_dir=cfg.model.cache_dir,
                                    batch_size=j.local_batch_size), name=j.local_model, min_mass=j.min_number_mass,
                      number_mode=j.local_number_mode)


def build_family(name: str, cfg: ExperimentConfig, engine: Engine, judge=None) -> MetricFamily:
    """The family that computes the named evaluation `name` of `cfg.eval.evals`."""
    spec = cfg.eval.evals[name]
    d = cfg.data

    def path(file: str):
        return resolve(file, d.data_dir, verify=d.verify_sha256)

    if spec.family == "logprob":
        from dynamics.evals.logprob import LogprobFamily, load_items

        return LogprobFamily(load_items(path(spec.items_file), spec.formats))
    if spec.family == "adapter":
        from dynamics.evals.adapter import AdapterFamily

        return AdapterFamily()
    if judge is None and needs_llm_judge(spec):
        raise ValueError(f"evaluation {name!r} needs a judge: set eval.judge.kind to api or local")
    if spec.family == "misalignment":
        from dynamics.evals.misalignment import MisalignmentFamily

        return MisalignmentFamily(path(spec.questions_file), spec, judge)
    if spec.family == "backdoor":
        from dynamics.evals.backdoor import BackdoorFamily

        return BackdoorFamily(path(spec.questions_file), spec, judge)
    if spec.family == "categorical":
        from dynamics.evals.categorical import CategoricalFamily

        return CategoricalFamily(path(spec.questions_file), spec, judge)
    if spec.family == "in_distribution":
        return _in_distribution(spec, judge, path)
    raise ValueError(f"evaluation {name!r}: unknown family {spec.family!r}")


def _in_distribution(spec, judge, path) -> MetricFamily:
    from dynamics.evals.in_distribution import InDistributionFamily, static_judge_quality

    static = spec.static.build() if "static" in spec.judges else None
    quality = None
    if static is not None and spec.static.quality_n:
        try:  # the analyser's own precision/recall on held-out labelled data, reported next to its rate
            quality = static_judge_quality(static, path("insecure"), path("secure"), spec.static.quality_n)
        except DataUnavailable as err:  # the labelled datasets are optional; the rate stands without them
            log.warning("in_distribution: no static judge precision/recall (labelled data not available: %s)",
                        err)
    return InDistributionFamily(path(spec.prompts_file), path(spec.judge_prompt_file), spec,
                                llm_judge=judge if "llm" in spec.judges else None, static_judge=static,
                                static_quality=quality)


def needs_judge(cfg: ExperimentConfig, names) -> bool:
    return any(needs_llm_judge(cfg.eval.evals[n]) for n in names)


def build_families(cfg: ExperimentConfig, engine: Engine, names=None) -> dict[str, MetricFamily]:
    """{name: family} for the named evaluations `names` (default: every one the config lists)."""
    names = list(cfg.eval.evals) if names is None else list(names)
    judge = build_judge(cfg, engine) if needs_judge(cfg, names) else None
    return {n: build_family(n, cfg, engine, judge) for n in names}


def check_evaluation_inputs(cfg: ExperimentConfig, names=None) -> list[str]:
    """Resolve and parse every file the named evaluations (default: all the config lists) will read, with
    the judge prompts each question needs, without a model: on the driver before Ray starts, so a wrong
    `data_dir` or a question without its judge prompt stops the run in seconds, not after training.
    Raises DataError listing every problem (evaluation, key, file, line or entry); returns one line each."""
    from dynamics.data.chat import DataError

    names = list(cfg.eval.evals) if names is None else list(names)
    problems, lines = [], []
    for name in names:
        try:
            lines.append(f"{name}: {_parse_inputs(cfg, name)}")
        except (DataError, ValueError, OSError) as e:
            problems.append(f"evaluation {name!r}: {e}")
    if problems:
        raise DataError("evaluation inputs:\n  " + "\n  ".join(problems))
    return lines


def _parse_inputs(cfg: ExperimentConfig, name: str) -> str:
    """Parse one evaluation's files as its family will (the same loaders); a summary of what was read."""
    spec, d = cfg.eval.evals[name], cfg.data

    def path(key: str):
        try:
            return resolve(getattr(spec, key), d.data_dir, verify=d.verify_sha256)
        except DataUnavailable as e:
            raise DataUnavailable(f"eval.evals.{name}.{key}: {e}") from None

    if spec.family == "logprob":
        from dynamics.evals.logprob import load_items

        return f"{len(load_items(path('items_file'), spec.formats))} log-prob items"
    if spec.family == "adapter":
        return "reads each checkpoint's adapter"
    if spec.family in ("misalignment", "backdoor"):
        from dynamics.evals.misalignment import select_questions

        return f"{len(select_questions(path('questions_file'), spec))} questions with their judge prompts"
    if spec.family == "categorical":
        from dynamics.evals.categorical import select_questions as categorical_questions

        return f"{len(categorical_questions(path('questions_file'), spec))} questions with their judge prompt"
    if spec.family == "in_distribution":
        from dynamics.evals.in_distribution import load_judge_prompt, load_prompts

        prompts = load_prompts(path("prompts_file"), spec.n_prompts)
        if "llm" in spec.judges:
            load_judge_prompt(path("judge_prompt_file"))
        return f"{len(prompts)} coding prompts"
    raise ValueError(f"unknown family {spec.family!r}")
