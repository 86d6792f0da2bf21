"""Evaluation on Ray actors: an `Evaluator` holds one base model; an `EvaluatorPool` feeds them.

Guarantees (tested): each checkpoint of a run is evaluated exactly once, in step order, and training
never waits for it. They rest on two facts rather than on in-memory state:
  * the metric store is written once per (run, step) and an evaluator skips a stored step, and
  * `sync_run` rescans the run's checkpoint folder and queues every complete checkpoint that has no
    stored result, in step order; a restarted pool or evaluator loses nothing, since the next sync (after
    the next checkpoint, and the driver's final `wait_run`) finds whatever was not yet evaluated.
A run is always served by the same evaluator (chosen by its id), so its checkpoints stay in order.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import zlib
from collections import deque

import ray

from dynamics.config import ExperimentConfig
from dynamics.orchestration.names import NAMESPACE, find_actor, pool_name, tracker_name
from dynamics.records import MetricRow, RunInfo
from dynamics.train.checkpoint import adapter_dir, list_checkpoints

log = logging.getLogger(__name__)


class Evaluator:
    """Holds the base model once; evaluates one checkpoint at a time with every metric family."""

    def __init__(self, cfg_dict: dict):
        from dynamics.engines.factory import make_engine
        from dynamics.evals.suite import build_families
        from dynamics.quiet import quiet_libraries

        quiet_libraries()
        self.cfg = ExperimentConfig.model_validate(cfg_dict)
        t0 = time.perf_counter()
        self.engine = make_engine(self.cfg)
        self.families = build_families(self.cfg, self.engine)
        self.load_seconds = time.perf_counter() - t0
        self._lock = threading.Lock()

    def ready(self) -> float:
        return self.load_seconds

    def evaluate(self, run: dict, step: int, checkpoint_dir: str, experiment_dir: str, tracker: str | None) -> dict:
        from dynamics.evals.base import EvalContext
        from dynamics.evals.sample_table import sample_tables
        from dynamics.tracking.store import MetricStore

        info = RunInfo(**run)
        store = MetricStore(experiment_dir)
        with self._lock:
            if store.has(info.run_id, step, "eval"):
                return {"step": step, "skipped": True}
            t0 = time.perf_counter()
            # Step 0 is the untouched model itself (its zero-initialised adapter would give the same).
            self.engine.use_adapter(None if step == 0 else adapter_dir(checkpoint_dir))
            metrics, counts, records, seconds = {}, {}, [], {}
            for fam in self.families:
                t = time.perf_counter()
                res = fam.evaluate(self.engine, EvalContext(info, step, seed=info.seed * 100_003 + step))
                seconds[fam.name] = time.perf_counter() - t
                metrics.update(res.metrics)
                counts.update(res.counts)
                records.extend(res.records)
            total = time.perf_counter() - t0
            rows = [MetricRow.make(info, step, k, v, counts.get(k)) for k, v in metrics.items()]
            rows += [MetricRow.make(info, step, f"timing/{k}_seconds", v) for k, v in seconds.items()]
            rows.append(MetricRow.make(info, step, "timing/eval_seconds", total))
            written = store.write(info, step, "eval", rows, records)
        t = find_actor(tracker) if written and tracker else None
        if t is not None:
            t.log_eval.remote(step, {r.metric: r.value for r in rows}, sample_tables(records))
            t.event.remote({"type": "eval", "run": info.run_id, "step": step, "seconds": total, "metrics": metrics})
        return {"step": step, "skipped": not written, "seconds": total}


class EvaluatorPool:
    """Queues checkpoints of every run of an experiment to the evaluators of their base model."""

    def __init__(self, cfg_dict: dict):
        self.cfg_dict = cfg_dict
        self.cfg = ExperimentConfig.model_validate(cfg_dict)
        self._evaluators: dict[str, list] = {}
        self._queues: dict[str, deque] = {}
        self._known: dict[str, set[int]] = {}  # steps queued or in flight, per run
        self._done: dict[str, set[int]] = {}
        self._errors: dict[str, list[str]] = {}
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

    def sync_run(self, run: dict, checkpoint_root: str, run_cfg: dict | None = None) -> int:
        """Queue every complete, unevaluated checkpoint of `run` in step order. Returns how many were added."""
        from dynamics.tracking.store import MetricStore

        info = RunInfo(**run)
        cfg = ExperimentConfig.model_validate(run_cfg) if run_cfg else self.cfg
        store = MetricStore(cfg.experiment_dir)
        evaluated = set(store.steps(info.run_id, "eval"))
        found = list_checkpoints(checkpoint_root)
        added = 0
        with self._cv:
            q = self._queues.setdefault(info.run_id, deque())
            known = self._known.setdefault(info.run_id, set())
            done = self._done.setdefault(info.run_id, set())
            done |= evaluated
            for step, path in found:
                if step in known or step in done:
                    continue
                if step == 0 and not cfg.eval.step0:
                    continue
                q.append((step, str(path)))
                known.add(step)
                added += 1
            if found:
                self._latest_ckpt[info.run_id] = max(self._latest_ckpt.get(info.run_id, -1), found[-1][0])
            self._report_lag(info.run_id)
            w = self._workers.get(info.run_id)
            if w is None or not w.is_alive():
                w = threading.Thread(target=self._serve, args=(info, cfg), daemon=True, name=f"eval-{info.run_id}")
                self._workers[info.run_id] = w
                w.start()
            self._cv.notify_all()
        return added

    def _serve(self, info: RunInfo, cfg: ExperimentConfig) -> None:
        evaluators = self._evaluators_for(cfg)
        ev = evaluators[zlib.crc32(info.run_id.encode()) % len(evaluators)]
        tracker = tracker_name(info.run_id)
        while True:
            with self._cv:
                q = self._queues[info.run_id]
                if not q:
                    self._workers.pop(info.run_id, None)
                    self._cv.notify_all()
                    return
                step, path = q[0]
            for attempt in range(3):
                try:
                    ray.get(ev.evaluate.remote(info.as_dict(), step, path, str(cfg.experiment_dir), tracker))
                    err = None
                    break
                except ray.exceptions.RayActorError as e:  # the evaluator died: Ray restarts it; retry
                    err = f"evaluator died: {e}"
                    time.sleep(1.0)
                except Exception as e:  # a metric failed: record it, move on (the step stays unevaluated)
                    err = "".join(traceback.format_exception_only(type(e), e)).strip()
                    break
            with self._cv:
                q.popleft()
                if err is None:
                    self._done[info.run_id].add(step)
                else:
                    self._known[info.run_id].discard(step)
                    self._errors.setdefault(info.run_id, []).append(f"step {step}: {err}")
                self._report_lag(info.run_id)
                self._cv.notify_all()

    def wait_run(self, run: dict, checkpoint_root: str, run_cfg: dict | None = None, timeout: float | None = None) -> dict:
        """Sync, then block until the run's queue is empty. Returns what was evaluated and any errors."""
        self.sync_run(run, checkpoint_root, run_cfg)
        run_id = run["run_id"]
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._queues.get(run_id) or run_id in self._workers:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cv.wait(timeout=1.0 if left is None else min(1.0, left))
            return {"evaluated": sorted(self._done.get(run_id, ())), "errors": list(self._errors.get(run_id, [])),
                    "pending": [s for s, _ in self._queues.get(run_id, ())]}

    def _run_status(self, run_id: str) -> dict:
        done = self._done.get(run_id, set())
        latest = self._latest_ckpt.get(run_id, -1)
        last_done = max(done) if done else -1
        return {"queued": len(self._queues.get(run_id, ())), "latest_checkpoint": latest,
                "latest_evaluated": last_done, "lag_steps": max(0, latest - max(last_done, 0)) if latest >= 0 else 0}

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


def evaluator_options(cfg: ExperimentConfig) -> dict:
    """Ray actor options of one evaluator: its own CPUs/GPUs (a vLLM evaluator with tensor parallelism
    takes `tensor_parallel_size` GPUs), any custom resources pinning it to a node type, restarts."""
    e = cfg.eval
    gpus = max(e.num_gpus, e.tensor_parallel_size if e.engine == "vllm" else 0)
    opts = dict(num_cpus=e.num_cpus, num_gpus=gpus, max_restarts=-1, max_task_retries=0, max_concurrency=2)
    if e.resources:
        opts["resources"] = dict(e.resources)
    return opts


def get_pool(cfg: ExperimentConfig):
    """The experiment's pool (created once, shared by every run of a sweep)."""
    return ray.remote(EvaluatorPool).options(
        name=pool_name(cfg.name), namespace=NAMESPACE, get_if_exists=True, num_cpus=0, max_concurrency=64,
        lifetime=None, max_restarts=-1,
    ).remote(cfg.model_dump(mode="json"))
