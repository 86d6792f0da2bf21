"""Evaluation on Ray actors: an `Evaluator` holds one base model; an `EvaluatorPool` feeds them.

The unit of work and of storage is (run, step, evaluation), an evaluation being one named entry of
`eval.evals` (a family plus its settings). Guarantees (tested): each (run, step, evaluation) is stored
exactly once, a run's checkpoints are evaluated in step order, and training never waits for it. They rest
on two facts rather than on in-memory state:
  * the metric store is written once per (run, step, evaluation) and an evaluator skips a stored one, and
  * `sync_run` rescans the run's checkpoints and queues, in step order, every (step, evaluation) that has
    no stored result; a restarted pool or evaluator loses nothing, since the next sync (after the next
    checkpoint, the driver's final `wait_run`, or a `dynamics evaluate`) finds whatever is missing.
A run is always served by the same evaluator (chosen by its id), so its checkpoints stay in order.
An evaluator that dies (killed, out of memory, its node lost) is replaced by a fresh one, which computes
that checkpoint's missing evaluations before any later checkpoint (what the dead one stored is skipped), up
to `EVALUATOR_REPLACEMENTS` times per checkpoint; only then is the checkpoint an error.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
import traceback
import zlib

import ray

from dynamics.config import ExperimentConfig
from dynamics.orchestration.names import NAMESPACE, find_actor, pool_name, tracker_name
from dynamics.evals.coverage import judge_coverage
from dynamics.evals.honesty import JUDGE_WEAK, judge_is_weak, missing_reasons
from dynamics.evals.sample_table import sample_tables
from dynamics.records import MetricRow, RunInfo
from dynamics.train.checkpoint import adapter_of, adapter_problem, list_checkpoints

log = logging.getLogger(__name__)
TRACKER_TIMEOUT_S = 120  # past this (an overloaded machine) a row may miss W&B; the store always has it
EVALUATOR_REPLACEMENTS = 3  # fresh evaluators one checkpoint may use up before it counts as failed
PROGRESS_FIRST_AFTER_S = 20.0  # an evaluation still generating after this says how far it is, and how fast
PROGRESS_EVERY_S = 30.0  # ... and again every this many seconds
PROGRESS_MIN_ANSWERS = 64  # an evaluation sampling this many answers or more says so when it starts


class CheckpointDamaged(Exception):
    """A checkpoint's file does not match its manifest: that checkpoint's evaluation fails, naming it."""


def evaluation_seed(info: RunInfo, step: int, name: str) -> int:
    """The sampling seed of one (run, step, evaluation): fixed, and different for each evaluation, so two
    evaluations of the same checkpoint never replay one random stream."""
    return (info.seed * 100_003 + step + 7919 * zlib.crc32(name.encode())) & 0xFFFFFFFF


def metric_name(evaluation: str, family_metric: str) -> str:
    """`misalignment/rate` of the evaluation `main` -> `main/rate` (the family's own prefix is replaced)."""
    return f"{evaluation}/{family_metric.split('/', 1)[1] if '/' in family_metric else family_metric}"


class Evaluator:
    """Holds the base model once; evaluates one checkpoint at a time, one named evaluation after another.
    Families are built on first use from the config a request carries (so `dynamics evaluate` can add an
    evaluation this evaluator was not started with) and kept for the next checkpoint."""

    def __init__(self, cfg_dict: dict):
        from dynamics.engines.factory import make_engine
        from dynamics.quiet import quiet_libraries
        from dynamics.threads import match_cpu_share

        quiet_libraries()
        self.cfg = ExperimentConfig.model_validate(cfg_dict)
        self.threads = match_cpu_share(self.cfg.eval.num_cpus, self.cfg.eval.threads)
        t0 = time.perf_counter()
        self.engine = make_engine(self.cfg, threads=self.threads)
        self.load_seconds = time.perf_counter() - t0
        self._families: dict[str, object] = {}
        self._judges: dict[str, object] = {}
        self._weak: dict[str, bool | None] = {}  # family key -> its judge is weak (None: no LLM judge)
        self._lock = threading.Lock()

    def ready(self) -> float:
        return self.load_seconds

    def _family(self, cfg: ExperimentConfig, name: str):
        from dynamics.evals.suite import build_family, build_judge, needs_judge

        spec = cfg.eval.evals[name].model_dump(mode="json")
        key = json.dumps([name, spec, cfg.data.model_dump(mode="json")], sort_keys=True)
        if key not in self._families:
            judge = None
            if needs_judge(cfg, [name]):
                jkey = json.dumps(cfg.eval.judge.model_dump(mode="json"), sort_keys=True)
                if jkey not in self._judges:
                    self._judges[jkey] = build_judge(cfg, self.engine)
                judge = self._judges[jkey]
            self._families[key] = build_family(name, cfg, self.engine, judge)
            self._weak[key] = None if judge is None else judge_is_weak(cfg.eval.judge, judge)
        return self._families[key]

    def _judge_weak(self, cfg: ExperimentConfig, name: str) -> bool | None:
        """Whether the evaluation's LLM judge is too weak to measure it (None: it has no LLM judge)."""
        spec = cfg.eval.evals[name].model_dump(mode="json")
        return self._weak.get(json.dumps([name, spec, cfg.data.model_dump(mode="json")], sort_keys=True))

    def evaluate(self, run: dict, step: int, checkpoint_dir: str | None, experiment_dir: str, tracker: str | None,
                 cfg_dict: dict | None = None, evaluations: list[str] | None = None) -> dict:
        """Run every named evaluation of `evaluations` (default: all the config lists) that the store does
        not hold for (run, step); each is stored, then logged, on its own. Returns what was written."""
        from dynamics.tracking.store import MetricStore

        info = RunInfo(**run)
        cfg = ExperimentConfig.model_validate(cfg_dict) if cfg_dict else self.cfg
        names = list(cfg.eval.evals) if evaluations is None else list(evaluations)
        store = MetricStore(experiment_dir)
        out = {"step": step, "written": [], "skipped": [], "seconds": {}, "warnings": []}
        with self._lock:
            todo = [n for n in names if not store.has(info.run_id, step, "eval", n)]
            out["skipped"] = [n for n in names if n not in todo]
            if not todo:
                return out
            problem = adapter_problem(checkpoint_dir) if checkpoint_dir else None
            if problem is not None:
                raise CheckpointDamaged(f"damaged checkpoint: {problem} (the other checkpoints are "
                                        "evaluated as usual)")
            if any(getattr(self._family(cfg, n), "needs_model", True) for n in todo):
                self.engine.use_adapter(adapter_of(checkpoint_dir))
            for name in todo:
                written, seconds, metrics, records = self._one(cfg, info, step, name, store, checkpoint_dir,
                                                               tracker)
                out["seconds"][name] = seconds
                (out["written"] if written else out["skipped"]).append(name)
                warning = _coverage_warning(cfg, step, name, records) if written else None
                if warning:
                    out["warnings"].append(warning)
                if written and tracker:
                    reasons = missing_reasons(cfg.eval.evals[name], name, metrics)
                    _log(tracker, info, step, name, metrics, records, seconds, warning, reasons)
                if written and cfg.analysis.alerts:
                    _alerts(cfg, info, step, name, tracker)
        return out

    def _one(self, cfg: ExperimentConfig, info: RunInfo, step: int, name: str, store, checkpoint_dir=None,
             tracker: str | None = None):
        from dynamics.evals.base import EvalContext

        family = self._family(cfg, name)
        t0 = time.perf_counter()
        progress = AnswerProgress(tracker, info.run_id, step, name) if tracker else None
        ctx = EvalContext(info, step, seed=evaluation_seed(info, step, name),
                          extras={"checkpoint": checkpoint_dir, "progress": progress})
        res = family.evaluate(self.engine, ctx)
        seconds = time.perf_counter() - t0
        metrics = {metric_name(name, k): v for k, v in res.metrics.items()}
        counts = {metric_name(name, k): v for k, v in res.counts.items()}
        weak = self._judge_weak(cfg, name)
        if weak is not None:  # every judged evaluation says whether its judge can measure it (honesty.py)
            metrics[f"{name}/{JUDGE_WEAK}"] = float(weak)
        coverage = judge_coverage(res.records)
        if coverage is not None:  # the share of answers the judge judged, with n = the answers
            metrics[f"{name}/judged_fraction"] = coverage.fraction
            counts[f"{name}/judged_fraction"] = coverage.answers
        metrics[f"{name}/eval_seconds"] = seconds
        rows = [MetricRow.make(info, step, k, v, counts.get(k)) for k, v in metrics.items()]
        written = store.write(info, step, "eval", rows, res.records, evaluation=name)
        return written, seconds, metrics, res.records


def _coverage_warning(cfg: ExperimentConfig, step: int, name: str, records: list) -> str | None:
    coverage = judge_coverage(records)
    return None if coverage is None else coverage.warning(name, step, cfg.eval.judge.min_judged_fraction)


class AnswerProgress:
    """Progress inside one long evaluation, as console events of the run's tracker: answers generated of
    the total, the engine's measured speed and the time left, after the first batch when that took long
    and then every `every_s` seconds (the families call it after each `generate` call)."""

    def __init__(self, tracker: str, run_id: str, step: int, evaluation: str, every_s: float = PROGRESS_EVERY_S,
                 first_after_s: float = PROGRESS_FIRST_AFTER_S):
        self.tracker, self.run_id, self.step, self.evaluation = tracker, run_id, step, evaluation
        self.every_s, self.first_after_s = every_s, first_after_s
        self.t0 = time.perf_counter()
        self.last: float | None = None
        self.tokens = 0

    def __call__(self, done: int, total: int, tokens: int, decoding: tuple[int, int, int] | None = None) -> None:
        now = time.perf_counter()
        self.tokens = tokens
        elapsed = now - self.t0
        if done == 0 and decoding is None:  # before the first batch: a big evaluation says what it will do
            if total >= PROGRESS_MIN_ANSWERS:
                self._send({"type": "eval_progress", "done": 0, "total": total, "tokens": 0, "seconds": 0.0,
                            "left_s": None})
            return
        due = (elapsed >= self.first_after_s) if self.last is None else (now - self.last >= self.every_s)
        if done >= total or not due:
            return
        # answers done so far, counting the batch being decoded by its share of max_new_tokens (answers that
        # stop early make the time left an upper bound)
        part = done + (decoding[0] * min(decoding[1], decoding[2]) / decoding[2] if decoding else 0)
        if part <= 0:
            return
        self.last = now
        self._send({"type": "eval_progress", "done": done, "total": total, "tokens": tokens, "seconds": elapsed,
                    "left_s": elapsed / part * (total - part), "decoding": list(decoding) if decoding else None})

    def _send(self, event: dict) -> None:
        t = find_actor(self.tracker)
        if t is not None:
            t.event.remote({**event, "run": self.run_id, "step": self.step, "evaluation": self.evaluation})


def _log(tracker: str, info: RunInfo, step: int, name: str, metrics: dict, records: list, seconds: float,
         warning: str | None = None, reasons: dict | None = None) -> None:
    """To the run's tracker (W&B and the console); the store already holds the result. Waits until W&B has
    the row: the driver closes the run's W&B run as soon as the last evaluation returns, and a
    fire-and-forget call could reach the tracker after that and be lost."""
    t = find_actor(tracker)
    if t is None:
        return
    try:
        ray.get(t.log_eval.remote(step, metrics, sample_tables(records, name), name), timeout=TRACKER_TIMEOUT_S)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:
        log.warning("step %d (%s) of %s is in the store but not (yet) in W&B: %s", step, name, info.run_id, e)
    # waited on too: the console's last lines are printed from the tracker once the driver's wait returns
    calls = [t.event.remote({"type": "eval", "run": info.run_id, "step": step, "evaluation": name,
                             "seconds": seconds, "metrics": metrics, "reasons": reasons or {}})]
    if warning:  # after the eval line it qualifies; in W&B as an alert beside `judged_fraction`
        calls.append(t.event.remote({"type": "message", "run": info.run_id, "text": warning}))
        calls.append(t.alert.remote(f"{info.run_id}: step {step} {name} judged on too few answers", warning))
    try:
        ray.get(calls, timeout=TRACKER_TIMEOUT_S)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:
        log.warning("step %d (%s) of %s: console line not delivered: %s", step, name, info.run_id, e)


def _alerts(cfg: ExperimentConfig, info: RunInfo, step: int, name: str, tracker: str | None) -> None:
    """The config's alert rules on what was just stored (dynamics.analysis.alerts); never fails the step."""
    from dynamics.analysis.alerts import check_and_fire

    actor = find_actor(tracker) if tracker else None
    try:
        check_and_fire(cfg.analysis.alerts, cfg.experiment_dir, info.run_id, step, name, actor)
    except Exception:
        log.exception("alert rules of %s step %d failed", info.run_id, step)


class EvaluatorPool:
    """Queues (run, step, evaluations) work to the evaluators of the run's base model, in step order per run."""

    def __init__(self, cfg_dict: dict):
        self.cfg_dict = cfg_dict
        self.cfg = ExperimentConfig.model_validate(cfg_dict)
        self._evaluators: dict[str, list] = {}
        self._queues: dict[str, list] = {}  # run -> [(step, checkpoint, names, cfg dict)], kept in step order
        self._known: dict[str, set[tuple[int, str]]] = {}  # (step, evaluation) queued or in flight, per run
        self._done: dict[str, set[tuple[int, str]]] = {}  # (step, evaluation) stored
        self._written: dict[str, set[tuple[int, str]]] = {}  # (step, evaluation) stored by this pool's evaluators
        self._errors: dict[str, list[str]] = {}
        self._warnings: dict[str, list[str]] = {}
        self._latest_ckpt: dict[str, int] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)

    def _evaluators_for(self, cfg: ExperimentConfig) -> list:
        key = cfg.model.name
        if key not in self._evaluators:
            opts = evaluator_options(cfg)
            self._evaluators[key] = [ray.remote(Evaluator).options(**opts).remote(cfg.model_dump(mode="json"))
                                     for _ in range(cfg.eval.num_evaluators)]
        return self._evaluators[key]

    def sync_run(self, run: dict, checkpoint_root: str | None, run_cfg: dict | None = None,
                 evaluations: list[str] | None = None, steps: list[int] | None = None,
                 checkpoints: list[tuple[int, str | None]] | None = None) -> int:
        """Queue, in step order, every (step, evaluation) of `run` that has a complete checkpoint and no
        stored result. `evaluations` defaults to every one the config lists; `checkpoints` (step, adapter
        dir or None for the base model) replaces the scan of `checkpoint_root` (checkpoints trained
        elsewhere). Returns how many (step, evaluation) pairs were added."""
        from dynamics.tracking.store import MetricStore

        info = RunInfo(**run)
        cfg = ExperimentConfig.model_validate(run_cfg) if run_cfg else self.cfg
        cfg_dict = cfg.model_dump(mode="json")
        names = list(cfg.eval.evals) if evaluations is None else list(evaluations)
        stored = MetricStore(cfg.experiment_dir).evaluations(info.run_id)
        found = checkpoints if checkpoints is not None else [
            (step, None if step == 0 else str(path)) for step, path in list_checkpoints(checkpoint_root)
            if step != 0 or cfg.eval.step0]
        if steps is not None:
            found = [(s, p) for s, p in found if s in set(steps)]
        added = 0
        with self._cv:
            q = self._queues.setdefault(info.run_id, [])
            known = self._known.setdefault(info.run_id, set())
            done = self._done.setdefault(info.run_id, set())
            done |= {(step, n) for step, have in stored.items() for n in have}
            for step, path in sorted(found, key=lambda x: x[0]):
                missing = [n for n in names if (step, n) not in known and (step, n) not in done]
                if missing:
                    bisect.insort(q, (step, path, tuple(missing), cfg_dict), key=lambda item: item[0])
                    known.update((step, n) for n in missing)
                    added += len(missing)
            if found:
                self._latest_ckpt[info.run_id] = max(self._latest_ckpt.get(info.run_id, -1), max(s for s, _ in found))
            self._report_lag(info.run_id)
            w = self._workers.get(info.run_id)
            if q and (w is None or not w.is_alive()):
                w = threading.Thread(target=self._serve, args=(info,), daemon=True, name=f"eval-{info.run_id}")
                self._workers[info.run_id] = w
                w.start()
            self._cv.notify_all()
        return added

    def _serve(self, info: RunInfo) -> None:
        while True:
            with self._cv:
                q = self._queues[info.run_id]
                if not q:
                    self._workers.pop(info.run_id, None)
                    self._cv.notify_all()
                    return
                step, path, names, cfg_dict = q.pop(0)  # the lowest step; later syncs insert behind or before
            cfg = ExperimentConfig.model_validate(cfg_dict)
            err, stored, warnings, written = self._evaluate_step(info, step, path, names, cfg, cfg_dict)
            self._finish(info.run_id, step, names, stored, err, warnings, written)
            self._release(cfg.model.name)

    def _evaluate_step(self, info: RunInfo, step: int, path, names, cfg: ExperimentConfig, cfg_dict: dict):
        """One checkpoint on the run's evaluator; a dead evaluator is replaced and the checkpoint asked
        again (the store skips what the dead one stored). Returns (error, names stored, warnings, names
        written here)."""
        tracker = tracker_name(info.run_id)
        err = None
        for attempt in range(EVALUATOR_REPLACEMENTS + 1):
            ev = self._evaluator_of(cfg, info.run_id)
            try:
                res = ray.get(ev.evaluate.remote(info.as_dict(), step, path, str(cfg.experiment_dir), tracker,
                                                 cfg_dict, list(names)))
                return (None, set(res["written"]) | set(res["skipped"]), res.get("warnings", []),
                        set(res["written"]))
            except ray.exceptions.RayActorError as e:  # killed, out of memory, node lost: a fresh one
                err = f"evaluator died: {_first_line(e)}"
                replacing = attempt < EVALUATOR_REPLACEMENTS
                self._event(info.run_id, f"evaluator died during step {step} ({_first_line(e)}); "
                            + ("starting a fresh one to evaluate it again" if replacing else "giving up on this step"))
                if replacing:
                    self._replace_evaluator(cfg, ev)
            except Exception as e:  # a metric failed: record it, move on (the step stays unevaluated)
                cause = getattr(e, "cause", None) or e  # Ray's wrapper carries the remote traceback: one line
                return "".join(traceback.format_exception_only(type(cause), cause)).strip(), set(), [], set()
        return err, set(), [], set()

    def _evaluator_of(self, cfg: ExperimentConfig, run_id: str):
        evaluators = self._evaluators_for(cfg)
        return evaluators[zlib.crc32(run_id.encode()) % len(evaluators)]

    def _replace_evaluator(self, cfg: ExperimentConfig, dead) -> None:
        """Put a fresh evaluator where `dead` was and wait until its model is loaded (a start that fails
        surfaces as the next attempt's RayActorError)."""
        ray.kill(dead, no_restart=True)  # so Ray does not also restart it: one model in memory, not two
        fresh = ray.remote(Evaluator).options(**evaluator_options(cfg)).remote(cfg.model_dump(mode="json"))
        with self._cv:
            evaluators = self._evaluators.get(cfg.model.name, [])
            self._evaluators[cfg.model.name] = [fresh if e == dead else e for e in evaluators]
        try:
            ray.get(fresh.ready.remote())
        except ray.exceptions.RayActorError:
            pass

    def _event(self, run_id: str, text: str) -> None:
        tracker = find_actor(tracker_name(run_id))
        if tracker is not None:
            tracker.event.remote({"type": "message", "run": run_id, "text": text})

    def _release(self, model: str) -> None:
        """Stop the evaluators of a whole-model checkpoint (not the pool's base model) once no queued
        work needs that model: each holds a full model in memory."""
        if model == self.cfg.model.name:
            return
        with self._cv:
            if any(item[3]["model"]["name"] == model for q in self._queues.values() for item in q):
                return
            actors = self._evaluators.pop(model, [])
        for a in actors:
            ray.kill(a)

    def _finish(self, run_id: str, step: int, names: tuple[str, ...], stored: set[str], err: str | None,
                warnings: list[str] = (), written: set[str] = frozenset()) -> None:
        with self._cv:
            self._warnings.setdefault(run_id, []).extend(warnings)
            self._written.setdefault(run_id, set()).update((step, n) for n in written)
            for n in names:
                self._known[run_id].discard((step, n))
                if n in stored:
                    self._done[run_id].add((step, n))
            if err is not None:
                self._errors.setdefault(run_id, []).append(f"step {step} ({', '.join(names)}): {err}")
            self._report_lag(run_id)
            self._cv.notify_all()

    def wait_run(self, run: dict, checkpoint_root: str | None, run_cfg: dict | None = None,
                 timeout: float | None = None, **which) -> dict:
        """Sync (`which`: as `sync_run`), then block until the run's queue is empty. Returns the steps
        with results, the (step, evaluation) pairs stored, any errors and what is still pending."""
        self.sync_run(run, checkpoint_root, run_cfg, **which)
        run_id = run["run_id"]
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._queues.get(run_id) or run_id in self._workers:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cv.wait(timeout=1.0 if left is None else min(1.0, left))
            done = self._done.get(run_id, set())
            return {"evaluated": sorted({s for s, _ in done}), "stored": sorted(done),
                    "written": sorted(self._written.get(run_id, set())),
                    "errors": list(self._errors.get(run_id, [])), "warnings": list(self._warnings.get(run_id, [])),
                    "pending": [(s, list(n)) for s, _, n, _ in self._queues.get(run_id, ())]}

    def _run_status(self, run_id: str) -> dict:
        done = {s for s, _ in self._done.get(run_id, set())}
        latest = self._latest_ckpt.get(run_id, -1)
        last_done = max(done) if done else -1
        queued = self._queues.get(run_id, ())
        return {"queued": len(queued), "queued_evaluations": sum(len(n) for _, _, n, _ in queued),
                # checkpoints with an evaluation queued or running (the evaluation lag, in checkpoints)
                "unfinished": len({s for s, _ in self._known.get(run_id, ())}),
                "latest_checkpoint": latest, "latest_evaluated": last_done,
                "lag_steps": max(0, latest - max(last_done, 0)) if latest >= 0 else 0}

    def _report_lag(self, run_id: str) -> None:
        """Queue length and lag to the run's W&B (pool/* against pool/checkpoint), fire and forget."""
        st = self._run_status(run_id)
        tracker = find_actor(tracker_name(run_id))
        if tracker is None:
            return
        tracker.log_status.remote({"pool/checkpoint": st["latest_checkpoint"], "pool/queued": st["queued"],
                                   "pool/lag_steps": st["lag_steps"]})

    def status(self) -> dict:
        """Queue length and lag (steps behind the newest checkpoint) per run."""
        with self._cv:
            return {run_id: self._run_status(run_id) for run_id in self._queues}


def unfinished_checkpoints(pool, run: dict, checkpoint_root: str) -> int | None:
    """Checkpoints of a run with an evaluation queued or running, once the pool has scanned for the
    newest (the trainer's notice of it may still be in flight). None when the pool does not answer: a
    pool that is gone or stuck must not stop training or the run's end."""
    try:
        ray.get(pool.sync_run.remote(run, checkpoint_root), timeout=60)
        return ray.get(pool.status.remote(), timeout=60).get(run["run_id"], {}).get("unfinished", 0)
    except Exception:  # noqa: BLE001
        return None


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def evaluator_options(cfg: ExperimentConfig) -> dict:
    """Ray actor options of one evaluator: its own CPUs/GPUs (a vLLM evaluator with tensor parallelism
    takes `tensor_parallel_size` GPUs), any custom resources pinning it to a node type. A dead evaluator is
replaced by the pool (`EvaluatorPool._replace_evaluator`), not restarted by Ray."""
    e = cfg.eval
    on_gpu = e.engine == "vllm" and e.vllm.resolved_device(e.num_gpus) == "cuda"
    gpus = max(e.num_gpus, e.tensor_parallel_size if on_gpu else 0)
    opts = dict(num_cpus=e.num_cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0, max_concurrency=2)
    if e.resources:
        opts["resources"] = dict(e.resources)
    return opts


def get_pool(cfg: ExperimentConfig):
    """The experiment's pool (created once, shared by every run of a sweep)."""
    return ray.remote(EvaluatorPool).options(
        name=pool_name(cfg.name), namespace=NAMESPACE, get_if_exists=True, num_cpus=0, max_concurrency=64,
        lifetime=None, max_restarts=-1,
    ).remote(cfg.model_dump(mode="json"))
