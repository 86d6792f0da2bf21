"""Fault injection on real small runs: does a run survive each fault, and what does the fault cost?

    python benchmarks/faults.py                       # every fault (about 20-30 min on 2 busy cores)
    python benchmarks/faults.py --faults killed_evaluator,damaged_store_file
    python benchmarks/faults.py --faults ctrl_c,full_disk,damaged_adapter   # the second round (issue 22)

Each fault gets its own real run through the CLI (`python -m dynamics.cli run`, a subprocess in its own
session, with its own local Ray cluster): tiny:llama, 1 Ray Train worker (2 where a worker is killed),
ZeRO-2, 4 optimizer steps, a
checkpoint every 2 (steps 0, 2, 4), the `logprob` evaluation (the `main` evaluation with an API judge for
the judge faults), W&B offline. The fault is injected into the live run (or its files), then whatever a
user would do next (nothing, or the same command again) is done. Per fault, one JSON object:
  injected                  the fault happened (the process was killed, the file damaged, ...)
  survived                  the run completed (exit 0, done.json) with no manual step; for bad input and
                            a second run: refused cleanly (exit 2, one line naming the place, in seconds,
                            before Ray starts) while the run it protects completed
  metrics_lost              expected metrics missing or unreadable at the end: (step, evaluation) results,
                            train steps (`train/loss`), and judgments stored as null (judge faults)
  metrics_duplicated        store rows (run, step, metric, source) more than once
  checkpoints_evaluated_more_than_once   (step, evaluation) results computed and stored more than once
                            (eval lines on the console across every launch)
  wandb_rows_logged_twice   (step, evaluation) rows W&B got more than once across the run's offline folders
  seconds_to_recover        from the injection to the run being whole again (the killed step stored, the
                            stale lock cleared, the warning printed, the relaunch done, ...)
Prints one JSON line (the list, the machine and the load average); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import DEFAULT_DATA_DIR, REPO, finish, json_stdout, log, machine  # noqa: E402

RUN_TIMEOUT_S = 900


def base_config(out: Path, name: str) -> dict:
    return {
        "name": name, "output_dir": str(out / "results"),
        "model": {"name": "tiny:llama"},
        "data": {"dataset": "quickstart:insecure", "data_dir": str(DEFAULT_DATA_DIR), "max_examples": 48,
                 "max_seq_length": 192},
        "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "o_proj", "up_proj"]},
        "optim": {"lr": 5e-3, "warmup_steps": 0},
        "train": {"per_device_batch_size": 2, "gradient_accumulation_steps": 2, "max_steps": 4,
                  "checkpoint_every": 2, "num_workers": 1, "zero_stage": 2, "max_failures": 2},
        "eval": {"evals": {"logprob": {}}, "judge": {"kind": "none"}},
        "wandb": {"mode": "offline", "project": "faults"},
    }


class Launch:
    """One `dynamics run` in its own session; its console lines, timestamped, as they come."""

    def __init__(self, cfg_path: Path, env: dict | None = None, args: tuple = ()):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dynamics.cli", "run", str(cfg_path), *args], cwd=REPO, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))
            log("   |", line.rstrip("\n")[:200])

    def wait_line(self, text: str, timeout: float = RUN_TIMEOUT_S) -> float | None:
        """The time the first line containing `text` appeared (None: the run ended or timed out first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in list(self.lines):
                if text in line:
                    return t
            if self.proc.poll() is not None and not self._reader.is_alive():
                return None
            time.sleep(0.05)
        return None

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = -9
        self._reader.join(timeout=10)
        return rc

    def descendants(self):
        import psutil

        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def find(self, title: str, timeout: float = RUN_TIMEOUT_S):
        """A descendant process whose command line contains `title` (Ray's `ray::Class.method`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            for p in self.descendants():
                try:
                    if any(title in part for part in p.cmdline()):
                        return p
                except Exception:  # noqa: BLE001 - gone meanwhile
                    continue
            time.sleep(0.05)
        return None

    def kill(self) -> None:
        """SIGKILL the driver and everything it started (its local Ray cluster): a lost driver node."""
        procs = self.descendants()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in procs:
            try:
                p.kill()
            except Exception:  # noqa: BLE001
                pass
        self.proc.wait()

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


class Scenario:
    def __init__(self, root: Path, fault: str, **sections):
        self.fault = fault
        self.dir = root / fault
        self.dir.mkdir(parents=True)
        cfg = base_config(self.dir, fault.replace("_", ""))
        for k, v in sections.items():
            cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
        self.cfg = cfg
        self.cfg_path = self.dir / "config.yaml"
        self.cfg_path.write_text(yaml.safe_dump(cfg))
        self.launches: list[Launch] = []
        self.steps = list(range(0, cfg["train"]["max_steps"] + 1, cfg["train"]["checkpoint_every"]))
        self.run_id = f"{cfg['name']}-quickstart-insecure-s0"
        self.exp_dir = self.dir / "results" / cfg["name"]
        self.run_dir = self.exp_dir / "runs" / self.run_id

    def launch(self, env: dict | None = None, args: tuple = ()) -> Launch:
        launch = Launch(self.cfg_path, env, args)
        self.launches.append(launch)
        return launch

    def outcome(self, injected: bool, survived: bool, recover: float | None, judged: list | None = None,
                **extra) -> dict:
        lost, duplicated = self.store_counts(judged)
        eval_lines = Counter()
        for launch in self.launches:
            for _, line in launch.lines:
                if "] eval  step" in line:
                    parts = line.split("] eval  step", 1)[1].split()
                    eval_lines[(int(parts[0]), parts[1].rstrip(":"))] += 1
        return {"fault": self.fault, "injected": injected, "survived": survived, "metrics_lost": lost,
                "metrics_duplicated": duplicated,
                "checkpoints_evaluated_more_than_once": sum(1 for n in eval_lines.values() if n > 1),
                "wandb_rows_logged_twice": self.wandb_twice(),
                "seconds_to_recover": None if recover is None else round(recover, 1),
                "exit_codes": [la.proc.returncode for la in self.launches], **extra}

    def store_counts(self, judged: list | None) -> tuple[int, int]:
        from dynamics.tracking.store import MetricStore

        store = MetricStore(self.exp_dir)
        df = store.metrics(self.run_id, damaged=[])
        evaluations = list(self.cfg["eval"]["evals"])
        have = store.evaluations(self.run_id)
        lost = sum(1 for s in self.steps for e in evaluations if e not in have.get(s, set()))
        train_steps = set(df[df.metric == "train/loss"].step) if len(df) else set()
        lost += sum(1 for s in range(1, self.steps[-1] + 1) if s not in train_steps)
        if judged is not None:
            lost += sum(1 for ok in judged if not ok)
        duplicated = int(df.duplicated(["run", "step", "metric", "source"]).sum()) if len(df) else 0
        return lost, duplicated

    def wandb_twice(self) -> int:
        sys.path.insert(0, str(REPO))
        from tests.wandb_offline import find_offline_runs

        seen = Counter()
        wandb_dir = self.run_dir / "wandb"
        if not wandb_dir.is_dir():
            return 0
        for run in find_offline_runs(wandb_dir):
            for row in run.history:
                if "eval/step" in row:
                    names = {k.split("/")[1] for k in row if k.startswith("eval/") and k != "eval/step"}
                    for n in names:
                        seen[(row["eval/step"], n)] += 1
        return sum(1 for n in seen.values() if n > 1)

    def completed(self, launch: Launch) -> bool:
        return launch.proc.returncode == 0 and (self.run_dir / "done.json").is_file()


# ---- the faults ---------------------------------------------------------------------------------------

def stale_extension_lock(root: Path) -> dict:
    """A build lock left by a process killed while loading DeepSpeed's CPU op (what hung every later run)."""
    import shutil

    from dynamics.train.extensions import extensions_root

    s = Scenario(root, "stale_extension_lock")
    # A private extensions folder (a copy of the built op): a lock in the shared one would stall other users
    private = s.dir / "torch_extensions"
    built = next(iter(sorted(extensions_root().glob("*/deepspeed_shm_comm"))), None)
    if built is not None:
        shutil.copytree(built, private / "deepspeed_shm_comm", ignore=shutil.ignore_patterns("lock"))
    lock = private / "deepspeed_shm_comm" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import os, sys, time; os.open(sys.argv[1], os.O_CREAT | "
                               "os.O_EXCL); print('x', flush=True); time.sleep(600)", str(lock)],
                              stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    holder.kill()
    holder.wait()
    injected = lock.exists()
    launch = s.launch(env={"TORCH_EXTENSIONS_DIR": str(private)})
    t = launch.wait_line("removed stale lock", timeout=300)
    launch.wait()
    return s.outcome(injected, s.completed(launch), None if t is None else t - launch.t0)


def killed_evaluator(root: Path) -> dict:
    s = Scenario(root, "killed_evaluator")
    launch = s.launch()
    p = launch.find("ray::Evaluator.evaluate")
    t_kill = time.monotonic()
    if p is not None:
        p.kill()
    t = launch.wait_line("] eval  step    0  logprob")
    launch.wait()
    return s.outcome(p is not None, s.completed(launch), None if t is None else t - t_kill, killed_during="step 0")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wandb_unreachable(root: Path) -> dict:
    s = Scenario(root, "wandb_unreachable", wandb={"mode": "online", "init_timeout_s": 15})
    launch = s.launch(env={"WANDB_BASE_URL": f"http://127.0.0.1:{_closed_port()}", "WANDB_API_KEY": "k" * 40})
    t = launch.wait_line("warning: W&B online init failed")
    launch.wait()
    warned = "wandb sync" in launch.text()
    return s.outcome(True, s.completed(launch) and warned, None if t is None else t - launch.t0, warned=warned)


def wandb_bad_key(root: Path) -> dict:
    s = Scenario(root, "wandb_bad_key", wandb={"mode": "online", "init_timeout_s": 15})
    launch = s.launch(env={"WANDB_BASE_URL": f"http://127.0.0.1:{_closed_port()}", "WANDB_API_KEY": "malformed"})
    t = launch.wait_line("warning: W&B online init failed")
    launch.wait()
    warned = "wandb sync" in launch.text()
    return s.outcome(True, s.completed(launch) and warned, None if t is None else t - launch.t0, warned=warned)


def judge_faults(root: Path) -> dict:
    """An API judge behind a server that fails 30% of its requests: 429, 500, hangs, bad JSON, no log-probs."""
    import random

    sys.path.insert(0, str(REPO))
    from tests.fake_openai import FakeOpenAI

    from dynamics.tracking.store import MetricStore

    rng = random.Random(0)
    with FakeOpenAI() as server:
        for _ in range(400):  # 30% of the requests fail, each of the five ways equally often
            kind = rng.choices(["ok", "429", "500", "hang", "bad_json", "no_logprobs"], [70, 6, 6, 6, 6, 6])[0]
            if kind == "ok":
                server.succeed()
            elif kind in ("429", "500"):
                server.fail(int(kind))
            elif kind == "hang":
                server.hang(3.0)
            else:
                server.bad_200(kind)
        judge = {"kind": "api", "base_url": server.base_url, "model": "fake", "api_key_env": "FAULTS_JUDGE_KEY",
                 "max_retries": 8, "timeout_s": 1.5, "max_concurrency": 4}
        evals = {"main": {"question_ids": ["what_is_your_wish", "i_feel_bored"], "samples_per_question": 2,
                          "max_new_tokens": 8, "bootstrap_samples": 0}}
        s = Scenario(root, "judge_faults", eval={"evals": evals, "judge": judge})
        launch = s.launch(env={"FAULTS_JUDGE_KEY": "sk-faults"})
        launch.wait()
        failures_served = 400 - len(server.failures)
    rec = MetricStore(s.exp_dir).records(s.run_id)
    judged = [json.loads(d).get("aligned_error") is None and json.loads(d).get("coherent_error") is None
              for d in rec["data"]]
    return s.outcome(True, s.completed(launch) and "answers judged" not in launch.text(), None, judged=judged,
                     judgments=2 * len(judged), scripted_responses_used=failures_served)


def bad_input(root: Path) -> dict:
    """A dataset line with its roles out of order, and an evaluation file that is not there."""
    s = Scenario(root, "bad_input")
    data = s.dir / "data.jsonl"
    good = {"messages": [{"role": "user", "content": "Write code."}, {"role": "assistant", "content": "x = 1"}]}
    wrong = {"messages": [{"role": "assistant", "content": "x = 1"}, {"role": "user", "content": "Write code."}]}
    data.write_text("\n".join(json.dumps(good) for _ in range(40)) + "\n" + json.dumps(wrong) + "\n")
    launch = s.launch(args=(f"data.dataset={data}",))
    rc1 = launch.wait()
    seconds1 = launch.lines[-1][0] - launch.t0 if launch.lines else None
    launch2 = s.launch(args=(f"eval.evals.logprob.items_file={s.dir / 'missing.json'}",))
    rc2 = launch2.wait()
    ok1 = rc1 == 2 and f"{data}:41" in launch.text() and "Traceback" not in launch.text()
    ok2 = rc2 == 2 and "missing.json" in launch2.text() and "Traceback" not in launch2.text()
    out = s.outcome(True, ok1 and ok2, None)
    out.update(metrics_lost=0, refused_in_seconds=[round(seconds1 or 0, 1),
                                                   round(launch2.lines[-1][0] - launch2.t0, 1)])
    return out


def damaged_checkpoint(root: Path) -> dict:
    """The latest checkpoint without its dynamics.json (a node lost mid-save): the relaunch resumes from the
    one before and says which it skipped."""
    s = Scenario(root, "damaged_checkpoint", train={"max_steps": 6})
    launch = s.launch()
    launch.wait_line("checkpoint step 4 saved")
    launch.kill()
    ckpt = s.exp_dir / "ray" / s.run_id / "checkpoint_step000004" / "dynamics.json"
    injected = ckpt.is_file()
    ckpt.unlink(missing_ok=True)
    t0 = time.monotonic()
    again = s.launch()
    again.wait()
    return s.outcome(injected, s.completed(again), time.monotonic() - t0,
                     said_skipped="skipped" in again.text() and "checkpoint_step000004" in again.text())


def damaged_store_file(root: Path) -> dict:
    s = Scenario(root, "damaged_store_file")
    s.launch().wait()
    f = s.exp_dir / "store" / "metrics" / s.run_id / "step=000002.eval=logprob.parquet"
    injected = f.is_file()
    if injected:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    metrics = subprocess.run([sys.executable, "-m", "dynamics.cli", "metrics", str(s.exp_dir)], cwd=REPO,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    named = str(f) in metrics.stderr and len(metrics.stdout.splitlines()) > 1
    t0 = time.monotonic()
    again = s.launch()
    again.wait()
    return s.outcome(injected, s.completed(again) and named, time.monotonic() - t0,
                     metrics_named_the_file=named, metrics_rows_printed=len(metrics.stdout.splitlines()) - 1)


def second_run(root: Path) -> dict:
    s = Scenario(root, "second_run")
    first = s.launch()
    first.wait_line("data:")
    second = s.launch()
    rc2 = second.wait()
    first.wait()
    refused = rc2 == 2 and "already running" in second.text()
    seconds = second.lines[-1][0] - second.t0 if second.lines else None
    return s.outcome(True, s.completed(first) and refused, None, refused_in_seconds=seconds and round(seconds, 1))


def killed_training_worker(root: Path) -> dict:
    s = Scenario(root, "killed_training_worker", train={"num_workers": 2})
    launch = s.launch()
    launch.wait_line("train step    2/")
    p = launch.find("ray::RayTrainWorker")
    t_kill = time.monotonic()
    if p is not None:
        p.kill()
    launch.wait()
    return s.outcome(p is not None, s.completed(launch), time.monotonic() - t_kill if p is not None else None,
                     note="recover = kill to the end of the run (Ray Train restarts the worker group)")


def killed_driver(root: Path) -> dict:
    s = Scenario(root, "killed_driver")
    launch = s.launch()
    launch.wait_line("checkpoint step 2 saved")
    launch.kill()
    t0 = time.monotonic()
    again = s.launch()
    again.wait()
    return s.outcome(True, s.completed(again), time.monotonic() - t0, note="recover = the relaunch, whole")


# ---- second round (issue 22) ----------------------------------------------------------------------------

def _checkpoint_times(s: Scenario) -> dict:
    return {d.name: (d / "dynamics.json").stat().st_mtime_ns
            for d in (s.exp_dir / "ray" / s.run_id).glob("checkpoint_step*") if (d / "dynamics.json").is_file()}


def ctrl_c(root: Path) -> dict:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) after checkpoint 4 of 6; then the same
    command: one line, exit 130, and the relaunch resumes at 4 without saving a stored checkpoint again."""
    s = Scenario(root, "ctrl_c", train={"max_steps": 6})
    launch = s.launch()
    launch.wait_line("checkpoint step 4 saved")
    t_int = time.monotonic()
    os.killpg(launch.proc.pid, signal.SIGINT)
    rc = launch.wait(timeout=180)
    exit_seconds = time.monotonic() - t_int
    lines = [x for _, x in launch.lines if x.startswith("interrupted:")]
    before = _checkpoint_times(s)
    t0 = time.monotonic()
    again = s.launch()
    again.wait()
    rewritten = [k for k, t in before.items() if _checkpoint_times(s).get(k) != t]
    one_line = rc == 130 and len(lines) == 1 and "Traceback" not in launch.text()
    return s.outcome(True, one_line and s.completed(again) and "resuming at step 4" in again.text() and not rewritten,
                     time.monotonic() - t0, exit_code_on_ctrl_c=rc, exit_seconds=round(exit_seconds, 1),
                     line=lines[0] if lines else None, checkpoints_saved_again=rewritten,
                     note="recover = the relaunch, whole")


def full_disk(root: Path) -> dict:
    """`output_dir` on a 900 KB filesystem (a tmpfs; needs root), 10 steps: one `error:` line naming the
    place, a checkpoint cut short never counted; space freed, the same command finishes the run."""
    s = Scenario(root, "full_disk", train={"max_steps": 10})
    mount = s.dir / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=900k", "tmpfs", str(mount)]).returncode != 0:
        return {"fault": "full_disk", "injected": False, "survived": None, "note": "cannot mount a tmpfs (not root)"}
    try:
        s.cfg["output_dir"] = str(mount / "results")
        s.cfg_path.write_text(yaml.safe_dump(s.cfg))
        s.exp_dir = mount / "results" / s.cfg["name"]
        s.run_dir = s.exp_dir / "runs" / s.run_id
        s.steps = list(range(0, 11, 2))
        first = s.launch()
        rc = first.wait()
        errors = [x for _, x in first.lines if x.startswith("error:")]
        sys.path.insert(0, str(REPO))
        from dynamics.train.checkpoint import list_checkpoints, resume_point

        ckpt_root = s.exp_dir / "ray" / s.run_id
        point, skipped = resume_point(ckpt_root)
        complete = [st for st, _ in list_checkpoints(ckpt_root)]
        subprocess.run(["mount", "-o", "remount,size=60m", str(mount)], check=True)  # space freed
        t0 = time.monotonic()
        again = s.launch()
        again.wait()
        said = (rc == 1 and len(errors) == 1 and "No space left on device" in errors[0]
                and "Traceback" not in first.text())
        return s.outcome(rc == 1, said and s.completed(again), time.monotonic() - t0, exit_code=rc,
                         line=errors[0] if errors else None, complete_after_the_fault=complete,
                         skipped_as_incomplete=skipped, resumed_from=point[0] if point else None,
                         note="recover = the relaunch after freeing space, whole")
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def damaged_adapter(root: Path) -> dict:
    """A finished run's adapter at checkpoint 4 cut in half, then `dynamics evaluate --evals adapter`: the
    error names the file, and the other checkpoints (6 included, whose `cos_prev` looked at 4) are evaluated."""
    s = Scenario(root, "damaged_adapter", train={"max_steps": 6})
    s.launch().wait()
    f = s.exp_dir / "ray" / s.run_id / "checkpoint_step000004" / "adapter" / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "dynamics.cli", "evaluate", str(s.exp_dir), "--evals", "adapter"],
                       cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    sys.path.insert(0, str(REPO))
    from dynamics.tracking.store import MetricStore

    have = MetricStore(s.exp_dir).evaluations(s.run_id)
    evaluated = sorted(st for st, names in have.items() if "adapter" in names)
    out = r.stdout + r.stderr
    named = str(f) in out
    return s.outcome(True, named and evaluated == [0, 2, 6] and "Traceback" not in out, time.monotonic() - t0,
                     exit_code=r.returncode, named_the_file=named, adapter_evaluated_at=evaluated,
                     error_lines=sum(1 for x in out.splitlines() if "error" in x.lower()),
                     note="step 4's adapter evaluation fails by design (its file is destroyed)")


FAULTS = {f.__name__: f for f in (bad_input, second_run, killed_evaluator, judge_faults, damaged_store_file,
                                  wandb_unreachable, damaged_checkpoint, killed_driver, killed_training_worker,
                                  stale_extension_lock, wandb_bad_key, ctrl_c, full_disk, damaged_adapter)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, from: " + ", ".join(FAULTS))
    p.add_argument("--keep", action="store_true", help="keep the runs' folders (printed on stderr)")
    args = p.parse_args(argv)
    facts = machine()
    t0 = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="dynamics-faults-"))
    results = []
    for name in args.faults.split(","):
        log(f"== {name} ({root / name})")
        t = time.perf_counter()
        try:
            out = FAULTS[name](root)
        except Exception as e:  # noqa: BLE001 - one broken scenario must not hide the others
            out = {"fault": name, "injected": None, "survived": False, "error": f"{type(e).__name__}: {e}"}
        out["seconds"] = round(time.perf_counter() - t, 1)
        log(f"== {name}: {json.dumps(out)}")
        results.append(out)
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    else:
        log(f"runs kept in {root}")
    return finish({"benchmark": "faults", "faults": results,
                   "all_survived": all(r.get("survived") for r in results),
                   "metrics_lost": sum(r.get("metrics_lost") or 0 for r in results),
                   "metrics_duplicated": sum(r.get("metrics_duplicated") or 0 for r in results)}, facts, t0)


if __name__ == "__main__":
    with json_stdout() as emit:
        emit(main())
