"""`dynamics evaluate`: add named evaluations to stored checkpoints, without retraining.

    dynamics evaluate results/paper_instruct --evals json,deception_factual
    dynamics evaluate results/paper_instruct/runs/paper_instruct-insecure-s0 --evals main --steps 0:100
    dynamics evaluate path/to/adapters --base-model Qwen/Qwen2.5-Coder-32B-Instruct --name other_study --evals main
    dynamics evaluate --checkpoint 0=org/model-step0 --checkpoint 100=org/model-step100 --name other --evals main

For every run found (an experiment dir: each run under `runs/`; a run dir; a results dir of experiments),
the run's stored config is loaded, the named evaluations are added to it (the run's own settings where it
lists them, else the shipped preset), `key=value` overrides apply (`eval.evals.main.samples_per_question=4`,
`eval.judge.kind=local`), and every checkpoint that lacks one of them is queued, in step order, on the
experiment's evaluator pool: a running sweep's pool when this joins its cluster (RAY_ADDRESS), else its own.
Results land in the same store, one file per (run, step, evaluation), and in the same W&B run (same id,
`eval/step` = the checkpoint's step; offline, a new offline folder of the run that `wandb sync` joins).
Interrupted and started again, it finds what is missing and does only that.

Checkpoints dynamics did not train are tracked the same way: a folder of PEFT adapter directories (the
step is the last number in each directory's name: `checkpoint-100`, `step_000100`), or `--checkpoint
STEP=PATH_OR_ID` pairs (an adapter directory, or a whole model: a Hugging Face id or directory). They
become one run of the experiment `--name` under `--output`; its `runs/<run>/checkpoints.json` lists them,
so later `dynamics evaluate <output>/<name> --evals ...` adds more evaluations to them like to any run.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dynamics.config import ConfigError, ExperimentConfig, config_from_dict
from dynamics.train.checkpoint import adapter_folder  # noqa: F401  (re-exported for the CLI)

CHECKPOINTS_FILE = "checkpoints.json"


@dataclass
class Target:
    """One run to evaluate: its config (with the evaluations added) and where its checkpoints are."""

    cfg: ExperimentConfig
    checkpoints: list[tuple[int, str | None]] | None = None  # None: scan the Ray Train checkpoint folder
    models: dict[int, str] = field(default_factory=dict)  # step -> a whole model to load for it


# ---- which runs, with which config ------------------------------------------------------------------

def find_run_dirs(path: str | Path) -> list[Path]:
    """Run dirs (holding config.yaml) under a run dir, an experiment dir or a results dir."""
    root = Path(path)
    if (root / "config.yaml").is_file() and root.parent.name == "runs":
        return [root]
    found = sorted(p.parent for p in root.glob("runs/*/config.yaml"))
    return found or sorted(p.parent for p in root.glob("*/runs/*/config.yaml"))


def run_config(run_dir: Path, evaluations: list[str], overrides: list[str] = ()) -> ExperimentConfig:
    """The run's stored config with `evaluations` as its evaluation list, where the run is now."""
    from dynamics.config.legacy import migrate

    source = run_dir / "config.yaml"
    data = migrate(yaml.safe_load(source.read_text()) or {})
    listed = (data.get("eval") or {}).get("evals") or {}
    data.setdefault("eval", {})["evals"] = {n: listed.get(n, {}) for n in evaluations}
    # The results may have moved since training: the run is where it is now. A renamed experiment folder
    # keeps the experiment's name (its identity: run ids, W&B ids, stored rows), recorded in its runs' folders.
    experiment = run_dir.parent.parent
    data["output_dir"] = str(experiment.parent)
    if data.get("name") and run_dir.name.startswith(f"{data['name']}-") and data["name"] != experiment.name:
        data["folder"] = str(experiment)
    else:
        data["name"] = experiment.name
        data.pop("folder", None)
    cfg = config_from_dict(data, source=str(source), overrides=list(overrides))
    if cfg.run_id != run_dir.name:
        raise ConfigError(f"{source}: the config's run id {cfg.run_id!r} is not its folder's name {run_dir.name!r}")
    return cfg


def stored_checkpoints(cfg: ExperimentConfig) -> tuple[list[tuple[int, str | None]] | None, dict[int, str]]:
    """The run's `checkpoints.json` (checkpoints trained elsewhere), or (None, {}) to scan Ray's folder."""
    path = cfg.run_dir / CHECKPOINTS_FILE
    if not path.is_file():
        return None, {}
    entries = json.loads(path.read_text())
    adapters = [(int(e["step"]), e.get("adapter")) for e in entries if "model" not in e]
    models = {int(e["step"]): e["model"] for e in entries if "model" in e}
    return adapters, models


def targets_from_results(path: str | Path, evaluations: list[str], overrides: list[str] = ()) -> list[Target]:
    runs = find_run_dirs(path)
    if not runs:
        raise ConfigError(f"{path}: no runs found (expected an experiment dir with runs/<run>/config.yaml, a run "
                          "dir, or a folder of adapters with --base-model)")
    out = []
    for run_dir in runs:
        cfg = run_config(run_dir, evaluations, overrides)
        adapters, models = stored_checkpoints(cfg)
        out.append(Target(cfg, adapters, models))
    return out


# ---- checkpoints dynamics did not train ---------------------------------------------------------------



def parse_checkpoint_args(items: list[str]) -> list[tuple[int, str]]:
    out = []
    for item in items:
        step, sep, where = item.partition("=")
        if not sep or not step.strip().isdigit() or not where:
            raise ConfigError(f"--checkpoint {item!r}: expected STEP=PATH_OR_MODEL_ID (e.g. 100=org/model-step100)")
        out.append((int(step), where))
    return sorted(out)


def base_model_of(adapter: Path) -> str | None:
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    return cfg.get("base_model_name_or_path")


def external_target(checkpoints: list[tuple[int, str]], evaluations: list[str], name: str, output: str,
                    base_model: str | None, base_config: str | None, overrides: list[str]) -> Target:
    """One run of the experiment `name` over checkpoints trained elsewhere; its run dir records them."""
    from dynamics.config import load_config

    adapters = [(s, str(Path(p).resolve())) for s, p in checkpoints if (Path(p) / "adapter_config.json").is_file()]
    models = {s: p for s, p in checkpoints if not (Path(p) / "adapter_config.json").is_file()}
    if adapters and base_model is None:
        bases = {base_model_of(Path(p)) for _, p in adapters}
        if len(bases) != 1 or None in bases:
            raise ConfigError(f"the adapters name base models {sorted(map(str, bases))}: pass --base-model")
        base_model = bases.pop()
    data = (load_config(base_config).model_dump(mode="json") if base_config else {})
    data.update(name=name, output_dir=output)
    data.setdefault("model", {})["name"] = base_model or next(iter(models.values()))
    data.setdefault("data", {}).setdefault("dataset", "external")
    listed = data.setdefault("eval", {}).get("evals") or {}
    data["eval"]["evals"] = {n: listed.get(n, {}) for n in evaluations}
    cfg = config_from_dict(data, source=base_config or "<dynamics evaluate>", overrides=list(overrides)).resolved()
    if models and cfg.eval.judge.kind == "local" and cfg.eval.judge.local_model == "self":
        raise ConfigError("whole-model checkpoints have no shared base model to judge with: set "
                          "eval.judge.kind=api, or eval.judge.local_model=<a model id>")
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    (cfg.run_dir / "config.yaml").write_text(cfg.to_yaml())
    entries = [{"step": s, "adapter": p} for s, p in adapters] + [{"step": s, "model": m} for s, m in models.items()]
    (cfg.run_dir / CHECKPOINTS_FILE).write_text(json.dumps(sorted(entries, key=lambda e: e["step"]), indent=1))
    return Target(cfg, adapters, models)


# ---- suites: a figure's evaluations as a file ------------------------------------------------------------

SUITE_KEYS = ("evals", "judge")


def load_suite(path: str | Path) -> tuple[list[str], list[str]]:
    """A suite file (jobs/configs/evals/*.yaml): `evals` (name -> settings over the preset, as in a config)
    and optionally `judge` (settings of eval.judge). Returns (the evaluation names, key=value overrides)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read suite: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("evals"), dict) or not data["evals"]:
        raise ConfigError(f"{path}: key 'evals': expected a mapping of evaluation name -> settings")
    unknown = sorted(set(data) - set(SUITE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; a suite has only: {', '.join(SUITE_KEYS)}")
    overrides = [f"eval.evals.{name}={json.dumps(settings or {})}" for name, settings in data["evals"].items()]
    overrides += [f"eval.judge.{k}={json.dumps(v)}" for k, v in (data.get("judge") or {}).items()]
    return list(data["evals"]), overrides


# ---- running ----------------------------------------------------------------------------------------------

def parse_steps(text: str | None) -> list[int] | None:
    """`0,10,20`, `10:50` (inclusive) or a mix; None: every step."""
    if not text:
        return None
    steps: set[int] = set()
    for part in text.split(","):
        a, sep, b = part.strip().partition(":")
        if not a.isdigit() or (sep and not b.isdigit()):
            raise ConfigError(f"--steps {text!r}: expected steps like 0,10,20 or a range 10:50")
        steps |= set(range(int(a), int(b) + 1)) if sep else {int(a)}
    return sorted(steps)


def _check_inputs(targets: list[Target], evaluations: list[str], missing: dict) -> None:
    """Every evaluation file the work needs, resolved and parsed before Ray starts (DataError: exit 2)."""
    from dynamics.evals.suite import check_evaluation_inputs

    checked = set()
    for t in targets:
        key = json.dumps([t.cfg.model_dump(mode="json")["eval"], t.cfg.data.data_dir], sort_keys=True)
        if missing[t.cfg.run_id] and key not in checked:
            checked.add(key)
            check_evaluation_inputs(t.cfg, evaluations)


def evaluate_targets(targets: list[Target], evaluations: list[str], steps: list[int] | None = None,
                     quiet: bool = False) -> dict:
    """Queue every missing (run, step, evaluation) of the targets on their pools; wait; report."""
    import ray

    from dynamics.orchestration.evaluator import get_pool
    from dynamics.orchestration.progress import ProgressPrinter
    from dynamics.orchestration.run import checkpoint_root, ensure_ray, run_info
    from dynamics.orchestration.tracker import start_tracker, tracker_name
    from dynamics.tracking.store import MetricStore
    from dynamics.train.checkpoint import incomplete_checkpoints

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    t0 = time.perf_counter()
    cfg0 = targets[0].cfg
    missing = {t.cfg.run_id: missing_results(t, evaluations, steps) for t in targets}
    left_out: list[str] = []  # checkpoints of finished runs that are not whole: errors, each naming its file
    for t in targets:
        todo = missing[t.cfg.run_id]
        say(f"[{t.cfg.run_id}] evaluate: {len(todo)} (step, evaluation) result(s) to compute"
            + (f": steps {sorted({s for s, _ in todo})}" if todo else ""))
        if t.checkpoints is None and not t.models:
            stored = MetricStore(t.cfg.experiment_dir).evaluations(t.cfg.run_id)
            for problem in incomplete_checkpoints(checkpoint_root(t.cfg)):
                m = re.search(r"checkpoint_step(\d+)", problem)
                step = int(m.group(1)) if m else None
                if step is not None and ((steps is not None and step not in steps)
                                         or set(evaluations) <= stored.get(step, set())):
                    continue  # not asked for, or nothing to compute there: not this command's business
                say(f"[{t.cfg.run_id}] evaluate: left out, not complete: {problem}")
                if (t.cfg.run_dir / "done.json").is_file():  # training is over: damaged, not being written
                    left_out.append(f"{t.cfg.run_id}: damaged checkpoint left out: {problem}")
    if not any(missing.values()) and not any(_unlogged(t.cfg, evaluations) for t in targets):
        say(f"evaluate: {len(targets)} run(s), 0 new (step, evaluation) result(s) of {', '.join(evaluations)}: "
            "every checkpoint has them" + (f"; {len(left_out)} error(s)" if left_out else ""))
        for e in left_out:  # no cluster needed: nothing to compute, W&B has everything
            say(f"  error: {e}")
        return {"runs": [t.cfg.run_id for t in targets], "written": {}, "errors": left_out, "pending": {},
                "seconds": time.perf_counter() - t0}
    _check_inputs(targets, evaluations, missing)
    if not quiet:
        _say_plan(targets, missing, say)
    ensure_ray(int(cfg0.eval.num_cpus * cfg0.eval.num_evaluators + 2))
    trackers, own = {}, []
    for t in targets:
        name = tracker_name(t.cfg.run_id)
        try:
            trackers[t.cfg.run_id] = ray.get_actor(name, namespace="dynamics")  # a run still training
        except ValueError:
            trackers[t.cfg.run_id] = start_tracker(t.cfg)
            own.append(t.cfg.run_id)
    pools = {t.cfg.name: get_pool(t.cfg) for t in targets}
    printer = ProgressPrinter(trackers if not quiet else {}, pool=None if quiet else pools[cfg0.name])
    requests = []  # (target, wait_run's arguments)
    for t in targets:
        info = run_info(t.cfg).as_dict()
        checkpoints = t.checkpoints
        if checkpoints is not None or t.models:
            checkpoints = list(checkpoints or [])
        for step, model in sorted(t.models.items()):  # a whole model: its own evaluator, no adapter
            if steps is None or step in steps:
                mcfg = t.cfg.model_copy(update={"model": t.cfg.model.model_copy(update={"name": model})})
                requests.append((t, dict(run=info, checkpoint_root=None, run_cfg=mcfg.model_dump(mode="json"),
                                         evaluations=evaluations, steps=[step], checkpoints=[(step, None)])))
        if checkpoints is None or checkpoints:
            requests.append((t, dict(run=info, checkpoint_root=str(checkpoint_root(t.cfg)),
                                     run_cfg=t.cfg.model_dump(mode="json"), evaluations=evaluations, steps=steps,
                                     checkpoints=checkpoints)))
    try:
        with printer:
            results = _wait_all(requests, pools, trackers)
            for run_id in own:
                ray.get(trackers[run_id].finish.remote())  # inside the printer: its last lines are printed
    except KeyboardInterrupt:  # Ctrl-C: close W&B on what it has; the CLI prints what is stored
        from dynamics.orchestration.stopping import ignore_further_interrupts

        ignore_further_interrupts()
        for run_id in own:
            try:
                ray.get(trackers[run_id].finish.remote(), timeout=20)
            except Exception:  # noqa: BLE001  (the store has it all; the next invocation replays W&B)
                pass
        raise
    errors = sorted({e for r in results for e in r["errors"]}) + left_out
    # what this invocation's evaluators wrote (another `dynamics evaluate` of the same run at the same time
    # may have written some of the missing ones: the store keeps one of each, and each counts its own)
    written = {t.cfg.run_id: sorted({tuple(k) for r, (rt, _) in zip(results, requests) if rt is t
                                     for k in r.get("written", ())} & set(missing[t.cfg.run_id])) for t in targets}
    missing = {t.cfg.run_id: [k for r, (rt, _) in zip(results, requests) if rt is t for k in r["pending"]]
               for t in targets}
    n = sum(len(w) for w in written.values())
    say(f"evaluate: {len(targets)} run(s), {n} new (step, evaluation) result(s) of {', '.join(evaluations)} "
        f"in {time.perf_counter() - t0:.0f} s" + (f"; {len(errors)} error(s)" if errors else ""))
    for e in errors:
        say(f"  error: {e}")
    return {"runs": [t.cfg.run_id for t in targets], "written": written, "errors": errors, "pending": missing,
            "seconds": time.perf_counter() - t0}


def _say_plan(targets: list[Target], missing: dict, say) -> None:
    """Each run's planned work and its estimate, before Ray starts (dynamics.orchestration.plan)."""
    from dynamics.orchestration.plan import plan_lines

    for t in targets:
        todo = missing[t.cfg.run_id]
        if todo:
            names = list(dict.fromkeys(n for _, n in todo))
            for line in plan_lines(t.cfg, names, {n: sum(1 for _, m in todo if m == n) for n in names}):
                say(f"[{t.cfg.run_id}] {line}")


POOL_ATTEMPTS = 5


def _wait_all(requests: list, pools: dict, trackers: dict) -> list[dict]:
    """Every request's `wait_run`, in order. A pool lost on the way (its actor died) is replaced, and the
    request asked again: the fresh pool rebuilds its queue from the store, so nothing is done twice."""
    import ray

    from dynamics.orchestration.evaluator import get_pool

    refs = [pools[t.cfg.name].wait_run.remote(**kw) for t, kw in requests]
    results = []
    for (t, kw), ref in zip(requests, refs):
        for attempt in range(POOL_ATTEMPTS):
            try:
                results.append(ray.get(ref))
                break
            except ray.exceptions.RayActorError as e:
                if attempt == POOL_ATTEMPTS - 1:
                    raise RuntimeError(f"{t.cfg.run_id}: the evaluator pool keeps failing ({e})") from None
                tracker = trackers.get(t.cfg.run_id)
                if tracker is not None:
                    tracker.event.remote({"type": "message", "run": t.cfg.run_id, "text": "evaluator pool lost; "
                                          "a fresh one goes on with what the store does not hold"})
                time.sleep(2)
                pools[t.cfg.name] = get_pool(t.cfg)
                ref = pools[t.cfg.name].wait_run.remote(**kw)
    return results


def missing_results(t: Target, evaluations: list[str], steps: list[int] | None) -> list[tuple[int, str]]:
    """The (step, evaluation) pairs of a target that have a checkpoint and no stored result."""
    from dynamics.train.checkpoint import checkpoint_root, list_checkpoints

    if t.checkpoints is None and not t.models:
        found = [s for s, _ in list_checkpoints(checkpoint_root(t.cfg)) if s != 0 or t.cfg.eval.step0]
    else:
        found = [s for s, _ in (t.checkpoints or [])] + list(t.models)
    have = _stored(t.cfg)
    return [(s, n) for s in sorted(found) if steps is None or s in steps for n in evaluations if (s, n) not in have]


def _unlogged(cfg: ExperimentConfig, evaluations: list[str]) -> bool:
    """Whether the store holds a result of these evaluations that the run's W&B ledger has not logged."""
    if not cfg.wandb.enabled or cfg.wandb.mode == "disabled":
        return False
    path = cfg.run_dir / "wandb_ledger.json"
    logged = set(json.loads(path.read_text()).get("eval_keys", [])) if path.is_file() else set()
    return any(f"{s}:{n}" not in logged for s, n in _stored(cfg) if n in evaluations)


def _stored(cfg: ExperimentConfig) -> set[tuple[int, str]]:
    from dynamics.tracking.store import MetricStore

    have = MetricStore(cfg.experiment_dir).evaluations(cfg.run_id)
    return {(step, name) for step, names in have.items() for name in names}


__all__ = ["load_suite", "Target", "find_run_dirs", "run_config", "targets_from_results", "adapter_folder", "external_target",
           "parse_checkpoint_args", "parse_steps", "evaluate_targets"]
