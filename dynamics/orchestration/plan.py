"""Before long work, say how long: the planned work of `dynamics run` / `dynamics evaluate` / `dynamics sweep`
and an estimate.

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

A sweep says how many runs are left and how long they take on this machine: the median wall time of its
finished runs (`total_seconds` in each run's done.json), else the stored optimizer-step times
(`train/step_seconds`) and evaluation times, else that the first run will measure it:

    plan: 10 runs (1 finished, 9 to do), 1 at a time; each 60 optimizer steps, 7 checkpoint(s) x [...]; ...
    estimate: ~1.9 h on this machine: 9 run(s), ~13 min each (the median wall time of 1 finished run(s) ...)
"""

from __future__ import annotations

import json
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
    import pandas as pd

    from dynamics.tracking.store import MetricStore

    try:
        df = MetricStore(cfg.experiment_dir).metrics()
    except Exception:  # noqa: BLE001  no store yet, or an unreadable one: no stored speed
        return {"seconds": {}, "steps": {}, "per_token": None}
    if df.empty:
        return {"seconds": {}, "steps": {}, "per_token": None}
    df = df[(df["model"] == cfg.model.name) & df["evaluation"].notna()]
    own = df[df["run"] == cfg.run_id]
    secs = df[df["metric"] == df["evaluation"] + "/eval_seconds"]
    # per evaluation, this run's own speed first, else the experiment's other runs' (a resumed run may
    # have stored one evaluation of a checkpoint and not yet the next)
    own_secs = secs[secs["run"] == cfg.run_id]
    secs = pd.concat([own_secs, secs[~secs["evaluation"].isin(set(own_secs["evaluation"]))]])
    seconds = {e: list(g["value"].dropna()) for e, g in secs.groupby("evaluation")}
    steps = {e: sorted(set(g["step"])) for e, g in secs.groupby("evaluation")}
    df = own if not own.empty else df  # the per-token speed: this run's own first
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


def planned_steps(cfg: ExperimentConfig) -> list[int] | None:
    """The checkpoints the run will evaluate (None: not known before training, `train.max_steps` unset)."""
    t = cfg.train
    if t.max_steps is None:
        return None
    steps = sorted({*range(t.checkpoint_every, t.max_steps + 1, t.checkpoint_every), t.max_steps})
    return ([0] if cfg.eval.step0 else []) + steps


def _evaluation_seconds(work: dict[str, Work], speeds: dict) -> tuple[float | None, list[str], list[str]]:
    """Seconds of evaluation per checkpoint over `work`'s evaluations (None: none measured), how each was
    measured, and the evaluations with work whose speed is not known yet."""
    from dynamics.orchestration.progress import format_duration

    total, how, unknown = None, [], []
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
        total = (total or 0.0) + per
    return total, how, unknown


def _describe(work: dict[str, Work]) -> str:
    return "[" + "; ".join(f"{n}: {w.describe()}" for n, w in work.items()) + "]"


def plan_lines(cfg: ExperimentConfig, evaluations: list[str], checkpoints: int | dict[str, int]) -> list[str]:
    """The planned work and its estimate, as console lines (no Ray, no model: the store and the files).
    `checkpoints`: how many checkpoints each evaluation still has to do (one number for all of them, or
    per evaluation: a checkpoint with some evaluations stored counts only for the missing ones)."""
    from dynamics.orchestration.progress import format_duration

    work = {n: evaluation_work(cfg, n) for n in evaluations}
    count = checkpoints if isinstance(checkpoints, dict) else {n: checkpoints for n in evaluations}
    count = {n: int(count.get(n, 0)) for n in evaluations}
    answers = sum(w.answers * count[n] for n, w in work.items())
    tokens = sum(w.tokens * count[n] for n, w in work.items())
    calls = sum(w.judge_calls * count[n] for n, w in work.items())
    if len(set(count.values())) <= 1:
        head = f"plan: {next(iter(count.values()), 0)} checkpoint(s) x {_describe(work)}"
    else:  # some checkpoints have some of the evaluations already
        head = "plan: [" + "; ".join(f"{n}: {count[n]} checkpoint(s) x {w.describe()}" for n, w in work.items()) + "]"
    lines = [head + (f" = {answers} answers, <= {tokens:,} new tokens, {calls} judge calls" if answers else "")]
    if not any(count.values()):
        return lines
    speeds = stored_speeds(cfg)
    total, how, unknown = 0.0, [], []
    for n, w in work.items():
        if not count[n]:
            continue
        per, said, not_known = _evaluation_seconds({n: w}, speeds)
        how += said
        unknown += not_known
        total += (per or 0.0) * count[n]
    if how:
        lines.append(f"estimate: ~{format_duration(total)} of evaluation on this machine ({'; '.join(how)})"
                     + (f"; not yet measured: {', '.join(unknown)}" if unknown else ""))
    elif unknown:
        lines.append(f"estimate: no speed measured on this machine yet for {', '.join(unknown)}; a long "
                     "evaluation prints its answers generated / total and the time left after its first batch")
    if total >= HOURS_WARNING_S:
        big = max(work, key=lambda n: work[n].tokens * count[n])
        lines.append(f"WARNING: this will take HOURS on this machine (~{format_duration(total)}). To make it "
                     f"shorter: fewer checkpoints (--steps), fewer answers or tokens "
                     f"(eval.evals.{big}.samples_per_question=..., eval.evals.{big}.max_new_tokens=...), "
                     "or a GPU with eval.engine=vllm")
    return lines


def _stored_run_seconds(trials: list[ExperimentConfig], key: str = "total_seconds") -> list[float]:
    """Each finished run's `key` in its done.json: `total_seconds`, its wall time, or `train_seconds`,
    its training (`fit()`) time alone (all that runs finished before the wall time was stored have)."""
    out = []
    for t in trials:
        try:
            seconds = json.loads((t.run_dir / "done.json").read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(seconds, (int, float)) and seconds > 0:
            out.append(float(seconds))
    return out


def _stored_step_seconds(cfg: ExperimentConfig) -> list[float]:
    """Every stored optimizer step's time (`train/step_seconds`) of the experiment's runs on this model."""
    from dynamics.tracking.store import MetricStore

    try:
        df = MetricStore(cfg.experiment_dir).metrics()
    except Exception:  # noqa: BLE001  no store yet, or an unreadable one
        return []
    if df.empty:
        return []
    rows = df[(df["metric"] == "train/step_seconds") & (df["model"] == cfg.model.name)]
    return [float(v) for v in rows["value"].dropna()]


def sweep_plan_lines(trials: list[ExperimentConfig], todo: list[ExperimentConfig], at_once: int) -> list[str]:
    """A sweep's planned work and its estimate on this machine: the finished runs' median wall time, else
    the stored step and evaluation times, else a line saying the first run will measure it."""
    from dynamics.orchestration.progress import format_duration
    from dynamics.tracking.store import MetricStore

    if not todo:
        return []
    first = todo[0]
    evaluations = list(first.eval.evals) if first.eval.enabled else []
    work = {n: evaluation_work(first, n) for n in evaluations}
    stored = MetricStore(first.experiment_dir).evaluations  # run id -> {step: {evaluations}}
    checkpoints = 0
    for t in todo:
        steps = planned_steps(t) or []
        have = stored(t.run_id) if t.eval.enabled else {}
        checkpoints += sum(1 for s in steps if set(t.eval.evals) - have.get(s, set()))
    same = len({(t.train.max_steps, t.train.checkpoint_every, json.dumps(t.model_dump(mode="json")["eval"],
                                                                          sort_keys=True)) for t in todo}) == 1
    each = (f"each {first.train.max_steps} optimizer steps" if first.train.max_steps else "each until its data ends")
    if evaluations:
        each += (f", {len(planned_steps(first) or [])} checkpoint(s) x {_describe(work)}" if same
                 else " (steps or evaluations differ between runs)")
    lines = [f"plan: {len(trials)} runs ({len(trials) - len(todo)} finished, {len(todo)} to do), {at_once} at a "
             f"time; {each}; {checkpoints} checkpoint(s) to evaluate in all"]
    rounds = -(-len(todo) // max(1, at_once))  # runs one after another on each slot
    measured, fit_only = _stored_run_seconds(trials), _stored_run_seconds(trials, "train_seconds")
    if measured:
        per_run = median(measured)
        how = f"the median wall time of {len(measured)} finished run(s) of this sweep"
    elif fit_only:
        per_run = median(fit_only)
        how = f"the median training time of {len(fit_only)} finished run(s) of this sweep; start-up not included"
    else:
        step_s = _stored_step_seconds(first)
        if not step_s or not first.train.max_steps:
            return lines + ["estimate: nothing measured on this machine yet; the first run prints each step's and "
                            "each evaluation's time, and relaunching this command estimates the rest from it"]
        per_step = median(step_s)
        eval_s, _, unknown = _evaluation_seconds(work, stored_speeds(first))
        ckpts = len(planned_steps(first) or [])
        per_run = first.train.max_steps * per_step + (eval_s or 0.0) * ckpts
        how = (f"{first.train.max_steps} steps x {per_step:.1f} s as stored"
               + (f" + {ckpts} checkpoint(s) x ~{format_duration(eval_s)} of evaluation" if eval_s else "")
               + (f"; not yet measured: {', '.join(unknown)}" if unknown else "") + "; start-up not included")
    total = rounds * per_run
    lines.append(f"estimate: ~{format_duration(total)} on this machine: {len(todo)} run(s), ~{format_duration(per_run)} "
                 f"each ({how})" + (f", {at_once} at a time" if at_once > 1 else ""))
    if total >= HOURS_WARNING_S:
        lines.append(f"WARNING: this sweep will take HOURS on this machine (~{format_duration(total)}); relaunching "
                     "the same command resumes it. To make it shorter: fewer runs (sweep.grid), fewer steps "
                     "(train.max_steps), fewer checkpoints (train.checkpoint_every) or smaller evaluations")
    return lines


__all__ = ["Work", "planned_steps", "evaluation_work", "stored_speeds", "plan_lines", "sweep_plan_lines", "HOURS_WARNING_S"]
