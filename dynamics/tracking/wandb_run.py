"""W&B for one run: deterministic id, `train/*` against `train/step`, `eval/*` against `eval/step`.

Evaluation keys carry the evaluation's name: `eval/main/rate`, `eval/logprob/multiple_choice/...`,
`eval/deception_factual/lie_rate`, each logged with the checkpoint's `eval/step`. An evaluation added
later (`dynamics evaluate`) is logged into the same run (same id, resumed), against the same axis.

Late evaluation results are logged with their own `eval/step` and never with `step=` (W&B drops rows
whose step is below the current one). A small ledger in the run dir records what reached W&B (an
evaluation key counts once its session finished, so one killed mid-write is logged again), so a
restarted run logs each train step and each checkpoint's metrics once, and replays from the metric store
whatever was stored but not yet logged. Secrets never reach the config: only variable *names* are in it.

W&B trouble never fails a run: an online `init` that cannot reach the server within
`wandb.init_timeout_s`, or is refused (a bad key), falls back to an offline run in the same folder (the
warning says the `wandb sync` command that uploads it later); a later call that raises is a warning, once,
and logging stops. `warnings` holds those lines for the console.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from dynamics.config import ExperimentConfig
from dynamics.files import write_atomic

log = logging.getLogger(__name__)

class WandbRun:
    def __init__(self, cfg: ExperimentConfig, run_dir: Path):
        self.cfg = cfg
        self.enabled = cfg.wandb.enabled and cfg.wandb.mode != "disabled"
        self.ledger_path = Path(run_dir) / "wandb_ledger.json"
        self.ledger = {"train_step": -1, "eval_steps": [], "eval_keys": [], "unconfirmed_keys": []}
        if self.ledger_path.exists():
            self.ledger.update(json.loads(self.ledger_path.read_text()))
        # Keys logged by a session that never finished (killed) may not have reached the offline file:
        # W&B writes it from another process, which died with it. They are logged again (at least once).
        self.ledger["unconfirmed_keys"] = []
        self._logged = set(self.ledger["eval_keys"])
        self.run = None
        self.warnings: list[str] = []
        if self.enabled:
            self._start(Path(run_dir))

    def _start(self, run_dir: Path) -> None:
        """`wandb.init` as configured; online trouble falls back to offline (see the module docstring)."""
        import wandb

        try:
            self._init(run_dir, self.cfg.wandb.mode)
            return
        except Exception as e:  # noqa: BLE001 - CommError, AuthenticationError, UsageError, timeouts...
            problem = f"W&B {self.cfg.wandb.mode} init failed ({type(e).__name__}: {_first_line(e)})"
            wandb.teardown()  # the failed run holds its id in this process's W&B service
        if self.cfg.wandb.mode == "offline":
            self._warn(f"{problem}; this run is not logged to W&B (the metric store has every metric)")
            return
        try:
            self._init(run_dir, "offline")
        except Exception as e:  # noqa: BLE001
            self._warn(f"{problem}, and offline too ({type(e).__name__}: {_first_line(e)}); this run is not "
                       "logged to W&B (the metric store has every metric)")
            return
        self._warn(f"{problem}; logging offline instead: upload later with `wandb sync {Path(self.run.dir).parent}`")

    def _warn(self, text: str) -> None:
        log.warning("%s", text)
        self.warnings.append(text)

    def _init(self, run_dir: Path, mode: str) -> None:
        import wandb

        run_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.cfg
        self.run = wandb.init(
            project=cfg.wandb.project, entity=cfg.wandb.entity, id=cfg.run_id, name=cfg.run_id,
            group=cfg.wandb.group or f"{cfg.name}/{cfg.dataset_name}", job_type="train",
            tags=[cfg.dataset_name, f"seed{cfg.seed}", cfg.model.name, *cfg.wandb.tags],
            config=cfg.model_dump(mode="json"), resume="allow", mode=mode, dir=str(run_dir),
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                    init_timeout=cfg.wandb.init_timeout_s),
        )
        self.run.define_metric("train/step")
        self.run.define_metric("train/*", step_metric="train/step")
        self.run.define_metric("eval/step")
        self.run.define_metric("eval/*", step_metric="eval/step")
        self.run.define_metric("pool/checkpoint")
        self.run.define_metric("pool/*", step_metric="pool/checkpoint")

    def _save_ledger(self) -> None:
        """Merge this session's ledger into the file, under a lock: two sessions of the same run at once (two
        `dynamics evaluate`) each add what they logged, never rewrite the other's away (which made the next
        invocation log those rows to W&B again)."""
        import fcntl

        self.ledger_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.ledger_path.with_name(self.ledger_path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                on_disk = json.loads(self.ledger_path.read_text()) if self.ledger_path.exists() else {}
            except ValueError:
                on_disk = {}
            merged = dict(self.ledger)
            merged["train_step"] = max(self.ledger["train_step"], on_disk.get("train_step", -1))
            merged["eval_steps"] = sorted({*self.ledger["eval_steps"], *on_disk.get("eval_steps", [])})
            merged["eval_keys"] = _sorted_keys({*self.ledger["eval_keys"], *on_disk.get("eval_keys", [])})
            merged["unconfirmed_keys"] = _sorted_keys(set(self.ledger["unconfirmed_keys"]) - set(merged["eval_keys"]))
            write_atomic(self.ledger_path, json.dumps(merged))

    def log_train(self, rows: list[dict]) -> None:
        """rows: {"train/step": s, "train/loss": ..., ...}; steps already logged are skipped."""
        fresh = [r for r in rows if r["train/step"] > self.ledger["train_step"]]
        if not fresh:
            return
        if self.run is not None:
            for r in fresh:
                if not self._call(self.run.log, r):
                    return
        self.ledger["train_step"] = max(r["train/step"] for r in fresh)
        self._save_ledger()

    def log_eval(self, step: int, metrics: dict[str, float | None], tables: dict[str, tuple[list, list]] = (),
                 evaluation: str | None = None) -> bool:
        """One (checkpoint, evaluation)'s metrics (names `<evaluation>/...`, without the `eval/` prefix),
        against `eval/step`. False if already logged. `evaluation=None` is an old-layout checkpoint whose
        every family was one result, logged once per step."""
        key = f"{step}:{evaluation}" if evaluation is not None else None
        if (key in self._logged) if key is not None else (step in self.ledger["eval_steps"]):
            return False
        if self.run is not None:
            import wandb

            payload = {"eval/step": step}
            payload.update({f"eval/{k}": v for k, v in metrics.items() if v is not None})
            for name, (columns, data) in dict(tables).items():
                payload[f"eval/{name}"] = wandb.Table(columns=columns, data=data)
            if not self._call(self.run.log, payload):
                return False
        if key is not None:
            self._logged.add(key)
            self.ledger["unconfirmed_keys"] = _sorted_keys(self._logged - set(self.ledger["eval_keys"]))
        else:
            self.ledger["eval_steps"] = sorted({*self.ledger["eval_steps"], step})
        self._save_ledger()
        return True

    def log_status(self, values: dict) -> None:
        if self.run is not None:
            self._call(self.run.log, values)

    def alert(self, title: str, text: str, level: str = "WARN") -> None:
        """A W&B alert (an alert rule fired). Online: W&B notifies by e-mail/Slack as the user set it up;
        offline: the alert is recorded in the run's file and synced with it (notification at sync)."""
        if self.run is not None:
            import wandb

            self._call(self.run.alert, title=title, text=text,
                       level=getattr(wandb.AlertLevel, level, wandb.AlertLevel.WARN))

    def _call(self, fn, *args, **kwargs) -> bool:
        """A W&B call; one that raises stops W&B logging for this run, with a warning (never the run)."""
        try:
            fn(*args, **kwargs)
            return True
        except Exception as e:  # noqa: BLE001
            self._warn(f"W&B call failed ({type(e).__name__}: {_first_line(e)}); W&B logging stops for this "
                       "run (the metric store has every metric; a relaunch logs what W&B missed)")
            self.run = None
            return False

    def finish(self) -> None:
        if self.run is not None:
            if not self._call(self.run.finish):  # returns once the offline file (or the server) has everything
                return  # not confirmed: the keys stay unconfirmed and are logged again next time
            self.run = None
        self.ledger["eval_keys"] = _sorted_keys(self._logged)
        self.ledger["unconfirmed_keys"] = []
        self._save_ledger()


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


def _sorted_keys(keys) -> list[str]:
    return sorted(keys, key=lambda k: (int(k.split(":")[0]), k))
