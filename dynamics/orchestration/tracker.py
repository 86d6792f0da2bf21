"""One tracker actor per run: owns the run's W&B run and collects progress events for the console."""

from __future__ import annotations

import threading

import ray

from dynamics.config import ExperimentConfig
from dynamics.orchestration.names import NAMESPACE, tracker_name


class RunTracker:
    def __init__(self, cfg_dict: dict):
        from dynamics.tracking.wandb_run import WandbRun

        self.cfg = ExperimentConfig.model_validate(cfg_dict)
        self.wandb = WandbRun(self.cfg, self.cfg.run_dir)
        self._events: list[dict] = []
        self._lock = threading.Lock()
        self.replay_from_store()

    def replay_from_store(self) -> int:
        """Log to W&B the checkpoints that the store holds but W&B never got (a crash between the two)."""
        from dynamics.tracking.store import MetricStore

        df = MetricStore(self.cfg.experiment_dir).metrics(self.cfg.run_id)
        df = df[df["source"] == "eval"]
        n = 0
        for (step, evaluation), g in df.groupby(["step", df["evaluation"].fillna("")], sort=True):
            metrics = {m: (None if v != v else float(v)) for m, v in zip(g["metric"], g["value"])}
            n += self.wandb.log_eval(int(step), metrics, evaluation=evaluation or None)
        return n

    def log_train(self, rows: list[dict]) -> None:
        with self._lock:
            self.wandb.log_train(rows)

    def log_eval(self, step: int, metrics: dict, tables: dict | None = None, evaluation: str | None = None) -> bool:
        with self._lock:
            return self.wandb.log_eval(step, metrics, tables or {}, evaluation)

    def log_status(self, values: dict) -> None:
        with self._lock:
            self.wandb.log_status(values)

    def event(self, event: dict) -> None:
        with self._lock:
            self._events.append(event)

    def poll_events(self) -> list[dict]:
        with self._lock:
            out, self._events = self._events, []
            return out

    def finish(self) -> None:
        with self._lock:
            self.wandb.finish()


def start_tracker(cfg: ExperimentConfig):
    return ray.remote(RunTracker).options(
        name=tracker_name(cfg.run_id), namespace=NAMESPACE, get_if_exists=True, num_cpus=0, max_concurrency=8,
    ).remote(cfg.model_dump(mode="json"))
