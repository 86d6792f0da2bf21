"""One tracker actor per run: owns the run's W&B run and collects progress events for the console.

W&B trouble (unreachable, a bad key, a call that raises) never kills the tracker: `WandbRun` turns it
into a warning, which becomes a console line here, and the run goes on (the store is the source of truth)."""

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
        self._unprinted = 0  # events added and not yet acknowledged by a console printer (`ack`)
        self._lock = threading.Lock()
        with self._lock:
            self._take_warnings()
        self.replay_from_store()

    def _take_warnings(self) -> None:
        """W&B's warnings as console lines (called with the lock held)."""
        for text in self.wandb.warnings:
            self._events.append({"type": "message", "run": self.cfg.run_id, "text": f"warning: {text}"})
            self._unprinted += 1
        self.wandb.warnings.clear()

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
            self._take_warnings()

    def log_eval(self, step: int, metrics: dict, tables: dict | None = None, evaluation: str | None = None) -> bool:
        with self._lock:
            logged = self.wandb.log_eval(step, metrics, tables or {}, evaluation)
            self._take_warnings()
            return logged

    def log_status(self, values: dict) -> None:
        with self._lock:
            self.wandb.log_status(values)
            self._take_warnings()

    def alert(self, title: str, text: str, level: str = "WARN") -> None:
        with self._lock:
            self.wandb.alert(title, text, level)
            self._take_warnings()

    def event(self, event: dict) -> None:
        with self._lock:
            self._events.append(event)
            self._unprinted += 1

    def pending(self) -> int:
        """Events a printer has not acknowledged: a sweep trial waits for 0 before it ends, since its tracker
        ends with it (an event polled but not acknowledged may be in a reply that dies with the tracker)."""
        with self._lock:
            return self._unprinted

    def ack(self, n: int) -> None:
        """A printer has printed `n` more events."""
        with self._lock:
            self._unprinted = max(0, self._unprinted - n)

    def poll_events(self) -> list[dict]:
        with self._lock:
            out, self._events = self._events, []
            return out

    def finish(self) -> None:
        with self._lock:
            self.wandb.finish()
            self._take_warnings()  # the driver's printer drains them after this


def start_tracker(cfg: ExperimentConfig):
    return ray.remote(RunTracker).options(
        name=tracker_name(cfg.run_id), namespace=NAMESPACE, get_if_exists=True, num_cpus=0, max_concurrency=8,
    ).remote(cfg.model_dump(mode="json"))
