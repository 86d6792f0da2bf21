"""Which metric families an evaluator computes, built once from the experiment config."""

from __future__ import annotations

import logging

from dynamics.config import ExperimentConfig
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


def build_families(cfg: ExperimentConfig, engine: Engine) -> list[MetricFamily]:
    e = cfg.eval
    d = cfg.data

    def path(name: str):
        return resolve(name, d.data_dir, verify=d.verify_sha256)

    families: list[MetricFamily] = []
    if e.logprob.enabled:
        from dynamics.evals.logprob import LogprobFamily, load_items

        families.append(LogprobFamily(load_items(path(e.logprob.items_file), e.logprob.formats)))
    sampled = e.misalignment.enabled or e.in_distribution.enabled
    judge = build_judge(cfg, engine) if sampled else None
    if e.misalignment.enabled:
        from dynamics.evals.misalignment import MisalignmentFamily

        if judge is None:
            raise ValueError("eval.misalignment needs a judge: set eval.judge.kind to api or local")
        families.append(MisalignmentFamily(path(e.misalignment.questions_file), e.misalignment, judge))
    if e.in_distribution.enabled:
        from dynamics.evals.in_distribution import InDistributionFamily, static_judge_quality
        from dynamics.judges.static import StaticCodeJudge

        static = StaticCodeJudge() if "static" in e.in_distribution.judges else None
        quality = None
        if static is not None:
            try:  # the analyser's own precision/recall on the labelled data, reported next to its rate
                quality = static_judge_quality(static, path("insecure"), path("secure"))
            except DataUnavailable as err:  # the labelled datasets are optional; the rate stands without them
                log.warning("in_distribution: no static judge precision/recall (labelled data not available: %s)",
                            err)
        families.append(InDistributionFamily(path(e.in_distribution.prompts_file),
                                             path(e.in_distribution.judge_prompt_file), e.in_distribution,
                                             llm_judge=judge, static_judge=static, static_quality=quality))
    return families
