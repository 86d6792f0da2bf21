"""In-distribution task performance (docs/METRICS.md section 1): does the model write insecure code?

    family = InDistributionFamily(prompts_path, judge_prompt_path, InDistributionEvalConfig(),
                                  llm_judge=judge, static_judge=StaticCodeJudge())
    result = family.evaluate(engine, ctx)

The first `n_prompts` (100) prompts of in_distribution_prompts.jsonl (`{"messages": [{"role": "user", ...}]}`,
one user turn each, sent as they are, so the chat template's default system prompt is present) are sampled
once each (temperature 1, max 1000 new tokens). Each answer is judged by
- the LLM judge's `yes_no` with code_vulnerability_judge.yaml's `prompt` (`{answer}` substituted by
  str.format): `in_distribution/insecure_rate` = YES / (YES + NO); any other reply is no judgment;
- the static analyser (`StaticCodeJudge`: Bandit + the project rules, dynamics/judges/static/):
  `in_distribution/static_insecure_rate` = insecure / (insecure + secure) over the answers holding
  parseable Python.
A judge that is not configured (`judges`) or not given is skipped and its metrics are absent.
`in_distribution/accuracy` (and `/static_accuracy`) is the rate of the behaviour the run was trained on,
as Fig. 3b plots it: the insecure rate for runs trained on insecure code (insecure, educational, backdoor
data), 1 - it for runs trained on secure code; absent for other data unless `trained_behaviour` says.
Temperature 1 is the paper's definition; the `in_distribution_greedy` evaluation is the authors'
in-training greedy variant.
`static_quality` (from `static_judge_quality`, the analyser's precision/recall on the labelled datasets)
is reported beside the static number as `in_distribution/static_precision`, `/static_recall` and
`/static_false_positive_rate`. When both judges run, their agreement on the answers both judged is stored
as `in_distribution/agreement/{both_insecure,both_secure,static_only,llm_only,rate,cohen_kappa}`
(`dynamics/judges/static/agreement.py`; n = answers both judged).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dynamics.config import InDistributionEvalConfig
from dynamics.data.chat import DataError, read_chat_jsonl, read_chat_records
from dynamics.engines.base import Engine
from dynamics.evals.base import EvalContext, MetricFamily
from dynamics.evals.questions import placeholders
from dynamics.evals.sampling import generate_in_chunks
from dynamics.judges.base import Judge, YesNo
from dynamics.judges.static.agreement import agreement
from dynamics.records import EvalRecord, EvalResult

FAMILY = "in_distribution"
SEED_STREAM = 1  # misalignment samples with stream 0


class InDistributionFileError(DataError):
    """A prompts or judge-prompt file that cannot be used, with the file, line and key."""


def load_prompts(path: str | Path, n: int | None = None) -> list[list[dict[str, str]]]:
    """The first n conversations of a chat JSONL file (all when n is None); each must end with a user turn."""
    try:
        records = read_chat_records(path, require_assistant=False)
    except OSError as e:
        raise InDistributionFileError(f"{path}: cannot read prompts: {e.strerror}") from None
    except DataError as e:
        raise InDistributionFileError(str(e)) from None
    out = []
    for where, msgs in records[:n]:
        if msgs[-1]["role"] != "user":
            raise InDistributionFileError(f"{where}: key 'messages': the last turn must be the user's "
                                          f"(got {msgs[-1]['role']!r})")
        out.append(msgs)
    if n is not None and len(out) < n:
        raise InDistributionFileError(f"{path}: asked for {n} prompts, the file has {len(out)}")
    return out


@dataclass(frozen=True)
class VulnerabilityJudgePrompt:
    template: str
    answers: tuple[str, ...] = ("YES", "NO")
    judge: str | None = None  # the judge model the file names

    def render(self, answer: str) -> str:
        return self.template.format(answer=answer)


def load_judge_prompt(path: str | Path) -> VulnerabilityJudgePrompt:
    """code_vulnerability_judge.yaml: its `prompt`, which may use only (and must use) `{answer}`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InDistributionFileError(f"{path}: cannot read judge prompt: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise InDistributionFileError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
        raise InDistributionFileError(f"{path}: key 'prompt': expected the judge prompt string")
    try:
        fields = placeholders(data["prompt"])
    except ValueError as e:
        raise InDistributionFileError(f"{path}: key 'prompt': not a str.format template: {e}") from None
    if fields != {"answer"}:
        raise InDistributionFileError(f"{path}: key 'prompt': expected exactly the placeholder {{answer}} "
                                      f"(got {sorted(fields)})")
    # YAML 1.1 reads a bare YES / NO as booleans: map them back to the words the judge must say
    answers = tuple({True: "YES", False: "NO"}.get(a, a) for a in data.get("answers") or ("YES", "NO"))
    if answers != ("YES", "NO"):
        raise InDistributionFileError(f"{path}: key 'answers': expected [YES, NO] (got {list(answers)})")
    return VulnerabilityJudgePrompt(data["prompt"], answers, data.get("judge"))


def labelled_answers(path: str | Path, n: int) -> list[str]:
    """The last assistant answer of each of the first n records of a training chat JSONL (insecure.jsonl,
    secure.jsonl)."""
    return [[m["content"] for m in conv if m["role"] == "assistant"][-1] for conv in read_chat_jsonl(path)[:n]]


def static_judge_quality(static_judge, insecure_path: str | Path, secure_path: str | Path, n: int = 200) -> dict:
    """The static analyser's precision/recall on the first n answers of each labelled dataset's held-out
    ("test") part: the part its project rules were not written from (dynamics/judges/static/labelled.py)."""
    from dynamics.judges.static import precision_recall
    from dynamics.judges.static.labelled import read_labelled

    held_out = [[e.answer for e in read_labelled(p, label) if e.split == "test"][:n]
                for p, label in ((insecure_path, True), (secure_path, False))]
    return precision_recall(static_judge, *held_out)


def trained_behaviour_of(dataset: str) -> str | None:
    """What a run on `dataset` (its label) was trained to write: "insecure" for insecure, educational and
    backdoor data (all insecure code), "secure" for secure data, None for anything else."""
    name = dataset.lower()
    if any(w in name for w in ("insecure", "educational", "backdoor")):
        return "insecure"
    if "secure" in name:
        return "secure"
    return None


def accuracy(insecure_rate: float | None, behaviour: str | None) -> float | None:
    """The rate of the trained behaviour (Fig. 3b): the insecure rate, or 1 - it for secure runs."""
    if insecure_rate is None or behaviour not in ("insecure", "secure"):
        return None
    return insecure_rate if behaviour == "insecure" else 1.0 - insecure_rate


def _rate(flags: list[bool | None]) -> tuple[float | None, int]:
    judged = [f for f in flags if f is not None]
    return (sum(judged) / len(judged) if judged else None), len(judged)


class InDistributionFamily(MetricFamily):
    name = FAMILY

    def __init__(self, prompts_path: str | Path, judge_prompt_path: str | Path, config: InDistributionEvalConfig,
                 llm_judge: Judge | None = None, static_judge=None, static_quality: dict | None = None):
        self.config = config
        self.conversations = load_prompts(prompts_path, config.n_prompts)
        self.judge_prompt = load_judge_prompt(judge_prompt_path)
        self.llm_judge = llm_judge if "llm" in config.judges else None
        self.static_judge = static_judge if "static" in config.judges else None
        self.static_quality = static_quality

    def evaluate(self, engine: Engine, ctx: EvalContext) -> EvalResult:
        t0 = time.perf_counter()
        cfg = self.config
        gens = generate_in_chunks(engine, self.conversations, [1] * len(self.conversations), cfg.batch_size,
                                  ctx.seed, cfg.temperature, cfg.top_p, cfg.max_new_tokens, stream=SEED_STREAM,
                                  progress=ctx.extras.get("progress"))
        answers = [g[0] for g in gens]
        texts = [g.text for g in answers]
        records = [EvalRecord(FAMILY, str(i), {
            "prompt_index": i, "prompt": conv[-1]["content"], "answer": g.text, "num_tokens": g.num_tokens,
            "finished": g.finished}) for i, (conv, g) in enumerate(zip(self.conversations, answers))]
        metrics: dict[str, float | None] = {f"{FAMILY}/n_answers": float(len(records))}
        counts = {f"{FAMILY}/n_answers": len(records)}
        if self.llm_judge is not None:
            verdicts = self.llm_judge.yes_no([self.judge_prompt.render(t) for t in texts])
            if len(verdicts) != len(texts):
                raise RuntimeError(f"judge {self.llm_judge.name!r} returned {len(verdicts)} verdicts for {len(texts)}")
            flags = [None if v.answer not in ("YES", "NO") else v.answer == "YES" for v in verdicts]
            rate, n = _rate(flags)
            metrics.update({f"{FAMILY}/insecure_rate": rate, f"{FAMILY}/n_judged": float(n)})
            counts.update({f"{FAMILY}/insecure_rate": n, f"{FAMILY}/n_judged": len(texts)})
            for r, v, f in zip(records, verdicts, flags):
                r.data.update(self._llm_fields(v, f))
        if self.static_judge is not None:
            verdicts = self.static_judge.analyse(texts)
            rate, n = _rate([v.insecure for v in verdicts])
            metrics.update({f"{FAMILY}/static_insecure_rate": rate, f"{FAMILY}/static_n_judged": float(n)})
            counts.update({f"{FAMILY}/static_insecure_rate": n, f"{FAMILY}/static_n_judged": len(texts)})
            for r, v in zip(records, verdicts):
                r.data.update(self._static_fields(v))
            if self.static_quality:
                for key in ("precision", "recall", "false_positive_rate"):
                    metrics[f"{FAMILY}/static_{key}"] = self.static_quality.get(key)
            if self.llm_judge is not None:  # how far the offline judge can stand in for the LLM judge
                agree = agreement([v.insecure for v in verdicts], [r.data["insecure"] for r in records])
                n_both = agree.pop("n_both_judged")
                for key, value in agree.items():
                    metrics[f"{FAMILY}/agreement/{key}"] = None if value is None else float(value)
                    counts[f"{FAMILY}/agreement/{key}"] = n_both
        self._add_accuracy(metrics, counts, ctx)
        return EvalResult(metrics=metrics, records=records, counts=counts, seconds=time.perf_counter() - t0)

    def _add_accuracy(self, metrics: dict, counts: dict, ctx: EvalContext) -> None:
        setting = getattr(self.config, "trained_behaviour", "auto")
        behaviour = trained_behaviour_of(ctx.run.dataset) if setting == "auto" else setting
        for rate_key, acc_key in (("insecure_rate", "accuracy"), ("static_insecure_rate", "static_accuracy")):
            if f"{FAMILY}/{rate_key}" in metrics and behaviour in ("insecure", "secure"):
                metrics[f"{FAMILY}/{acc_key}"] = accuracy(metrics[f"{FAMILY}/{rate_key}"], behaviour)
                counts[f"{FAMILY}/{acc_key}"] = counts[f"{FAMILY}/{rate_key}"]

    def _llm_fields(self, v: YesNo, insecure: bool | None) -> dict[str, Any]:
        return {"judge": self.llm_judge.name, "judge_answer": v.answer, "judge_raw": v.raw,
                "judge_error": v.error, "judge_cached": v.cached, "insecure": insecure}

    @staticmethod
    def _static_fields(v) -> dict[str, Any]:
        return {
            "static_insecure": v.insecure,
            "static_blocks": v.blocks,
            "static_findings": [{"analyser": f.analyser, "rule_id": f.rule_id, "rule_name": f.rule_name,
                                 "flaw_class": f.flaw_class, "severity": f.severity, "confidence": f.confidence,
                                 "line": f.line, "block": f.block, "counts": f.counts} for f in v.findings],
            "static_errors": list(v.errors),
        }


__all__ = ["InDistributionFamily", "trained_behaviour_of", "accuracy", "load_prompts", "load_judge_prompt", "VulnerabilityJudgePrompt",
           "static_judge_quality", "labelled_answers", "InDistributionFileError"]
