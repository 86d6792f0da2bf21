"""Before long work, say how long: the planned work of `dynamics run` / `dynamics evaluate` and an estimate.

    plan: 4 checkpoint(s) x main: 16 answers x <= 48 new tokens, 32 judge calls; logprob: 16 items
    estimate: ~7 min of evaluation (main: ~95 s per checkpoint, measured at steps 0-30 of this run)

The work per checkpoint comes from the evaluation files and settings (the same loaders the families use):
answers x max_new_tokens for the sampled families, judge calls, log-prob items. The estimate comes from
the engine's measured speed on this machine, as stored: the evaluation's own `eval_seconds` at earlier
checkpoints (of this run, else of another run of the experiment on the same model), else the seconds per
answer token (answers x max_new_tokens, judging included) of another sampled evaluation stored there. With
nothing stored the estimate waits for the first batch: a long evaluation prints its answers generated /
total, measured tokens/s and the time left (`AnswerProgress` in evaluator.py). Work estimated at an hour
or more says so up front, with what to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from dynamics.config import ExperimentConfig

HOURS_WARNING_S = 3600.0


@dataclass
class Work:
    """One evaluation's work at one checkpoint."""

    answers: int = 0  # sampled answers
    max_new_tokens: int = 0
    judge_calls: int = 0  # LLM judge requests
    items: int = 0  # log-prob items (teacher-forced, no sampling)
    static: int = 0  # answers the static analyser reads

    @property
    def tokens(self) -> int:
        return self.answers * self.max_new_tokens

    def describe(self) -> str:
        parts = []
        if self.answers:
            parts.append(f"{self.answers} answers x <= {self.max_new_tokens} new tokens")
        if self.judge_calls:
            parts.append(f"{self.judge_calls} judge calls")
        if self.static:
            parts.append("static analysis")
        if self.items:
            parts.append(f"{self.items} log-prob items")
        return ", ".join(parts) or "no model calls (reads the adapter)"


def evaluation_work(cfg: ExperimentConfig, name: str) -> Work:
    """The work of the named evaluation at one checkpoint, from its files and settings."""
    from dynamics.data.registry import resolve

    spec, d = cfg.eval.evals[name], cfg.data

    def path(key: str):
        return resolve(getattr(spec, key), d.data_dir, verify=False)

    if spec.family == "logprob":
        from dynamics.evals.logprob import load_items

        return Work(items=len(load_items(path("items_file"), spec.formats)))
    if spec.family in ("misalignment", "backdoor"):
        from dynamics.evals.misalignment import plan_answers, select_questions

        questions = select_questions(path("questions_file"), spec)
        answers = sum(p.n for p in plan_answers(questions, spec.samples_per_question))
        answers *= 2 if spec.family == "backdoor" else 1  # asked with and without the trigger
        return Work(answers=answers, max_new_tokens=spec.max_new_tokens, judge_calls=2 * answers)
    if spec.family == "categorical":
        from dynamics.evals.categorical import select_questions
        from dynamics.evals.misalignment import plan_answers

        answers = sum(p.n for p in plan_answers(select_questions(path("questions_file"), spec),
                                                spec.samples_per_question))
        return Work(answers=answers, max_new_tokens=spec.max_new_tokens, judge_calls=answers)
    if spec.family == "in_distribution":
        n = spec.n_prompts
        return Work(answers=n, max_new_tokens=spec.max_new_tokens, judge_calls=n if "llm" in spec.judges else 0,
                    static=n if "static" in spec.judges else 0)
    return Work()


def stored_speeds(cfg: ExperimentConfig) -> dict:
    """What the experiment's store says about this machine's speed on the run's model:
    {"seconds": {evaluation: [eval_seconds...]}, "steps": {evaluation: [steps]}, "per_token": (s, source)}."""
    from dynamics.tracking.store import MetricStore

    try:
        df = MetricStore(cfg.experiment_dir).metrics()
    except Exception:  # noqa: BLE001  no store yet, or an unreadable one: no stored speed
        return {"seconds": {}, "steps": {}, "per_token": None}
    if df.empty:
        return {"seconds": {}, "steps": {}, "per_token": None}
    df = df[(df["model"] == cfg.model.name) & df["evaluation"].notna()]
    own = df[df["run"] == cfg.run_id]
    df = own if not own.empty else df  # this run's own speed first
    secs = df[df["metric"] == df["evaluation"] + "/eval_seconds"]
    seconds = {e: list(g["value"].dropna()) for e, g in secs.groupby("evaluation")}
    steps = {e: sorted(set(g["step"])) for e, g in secs.groupby("evaluation")}
    answers = df[df["metric"] == df["evaluation"] + "/n_answers"]
    listed = cfg.eval.evals
    by_eval: dict[str, tuple[int, list[float], list[int]]] = {}  # evaluation -> (budget, s per token, steps)
    for (run, step, evaluation), g in answers.groupby(["run", "step", "evaluation"]):
        spec = listed.get(evaluation) or _stored_spec(cfg, run, evaluation)
        n, s = g["value"].iloc[0], secs[(secs["run"] == run) & (secs["step"] == step)
                                        & (secs["evaluation"] == evaluation)]["value"]
        if spec is None or not n or s.empty or not getattr(spec, "max_new_tokens", None):
            continue
        budget = int(n * spec.max_new_tokens)
        _, rates, at = by_eval.setdefault(evaluation, (budget, [], []))
        rates.append(float(s.iloc[0]) / budget)
        at.append(int(step))
    per_token = None
    if by_eval:  # the largest sampled evaluation (the least fixed cost per token), its median over checkpoints
        evaluation, (_, rates, at) = max(by_eval.items(), key=lambda kv: kv[1][0])
        per_token = (median(rates), f"{evaluation} at {_steps_text(sorted(at))}")
    return {"seconds": seconds, "steps": steps, "per_token": per_token}


def _stored_spec(cfg: ExperimentConfig, run: str, evaluation: str):
    from dynamics.config import load_config

    path = cfg.experiment_dir / "runs" / run / "config.yaml"
    try:
        return load_config(path).eval.evals.get(evaluation)
    except Exception:  # noqa: BLE001
        return None


def _steps_text(steps: list[int]) -> str:
    return f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"


def plan_lines(cfg: ExperimentConfig, evaluations: list[str], checkpoints: int) -> list[str]:
    """The planned work and its estimate, as console lines (no Ray, no model: the store and the files)."""
    from dynamics.orchestration.progress import format_duration

    work = {n: evaluation_work(cfg, n) for n in evaluations}
    answers = sum(w.answers for w in work.values()) * checkpoints
    tokens = sum(w.tokens for w in work.values()) * checkpoints
    calls = sum(w.judge_calls for w in work.values()) * checkpoints
    lines = [f"plan: {checkpoints} checkpoint(s) x [" + "; ".join(f"{n}: {w.describe()}" for n, w in work.items())
             + "]" + (f" = {answers} answers, <= {tokens:,} new tokens, {calls} judge calls" if answers else "")]
    if not checkpoints:
        return lines
    speeds = stored_speeds(cfg)
    total, how, unknown = 0.0, [], []
    for n, w in work.items():
        own = speeds["seconds"].get(n)
        if own:
            per = median(own)
            how.append(f"{n} ~{format_duration(per)} per checkpoint, measured at {_steps_text(speeds['steps'][n])}")
        elif w.answers and speeds["per_token"] is not None:
            rate, source = speeds["per_token"]
            per = rate * w.tokens
            how.append(f"{n} ~{format_duration(per)} per checkpoint, from the speed of {source}: "
                       f"{rate * 1000:.3g} s per 1000 answer tokens, judging included")
        else:
            if w.answers or w.items:
                unknown.append(n)
            continue
        total += per * checkpoints
    if how:
        lines.append(f"estimate: ~{format_duration(total)} of evaluation on this machine ({'; '.join(how)})"
                     + (f"; not yet measured: {', '.join(unknown)}" if unknown else ""))
    elif unknown:
        lines.append(f"estimate: no speed measured on this machine yet for {', '.join(unknown)}; a long "
                     "evaluation prints its answers generated / total and the time left after its first batch")
    if total >= HOURS_WARNING_S:
        big = max(work, key=lambda n: work[n].tokens)
        lines.append(f"WARNING: this will take HOURS on this machine (~{format_duration(total)}). To make it "
                     f"shorter: fewer checkpoints (--steps), fewer answers or tokens "
                     f"(eval.evals.{big}.samples_per_question=..., eval.evals.{big}.max_new_tokens=...), "
                     "or a GPU with eval.engine=vllm")
    return lines


__all__ = ["Work", "evaluation_work", "stored_speeds", "plan_lines", "HOURS_WARNING_S"]
