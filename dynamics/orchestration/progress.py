"""Readable progress lines on the console, fed by the tracker actors' events (not by Ray's logs)."""

from __future__ import annotations

import sys
import threading
import time

import ray

from dynamics.orchestration.names import find_actor

# The numbers an eval line shows, by their name within the evaluation (`main/rate` -> `rate`); the static
# judge's in-distribution rate before the LLM judge's.
HEADLINE = ("multiple_choice/p_misaligned_given_choice", "pivotal_tokens/p_misaligned_given_choice", "rate",
            "lie_rate", "triggered/rate", "untriggered/rate", "rate_difference", "static_insecure_rate",
            "insecure_rate", "accuracy", "norm", "cos_prev")
# Shown when the rate has no value: what the judge did say.
FALLBACK = {"rate": ("mean_aligned", "mean_coherent")}


def format_eval(e: dict) -> str:
    """One evaluation's line: its headline numbers (3 decimals), a reason where a headline metric has no
    value, and the weak-judge tag after the numbers that stand on a weak judge (dynamics.evals.honesty)."""
    from dynamics.evals.honesty import JUDGE_WEAK, WEAK_TAG, stands_on_judge, value_of

    name = e.get("evaluation", "")
    m = {k.split("/", 1)[1]: value_of(v) for k, v in e.get("metrics", {}).items() if "/" in k}
    reasons = e.get("reasons") or {}
    weak = bool(m.get(JUDGE_WEAK))
    keys = [k for k in HEADLINE if m.get(k) is not None or k in reasons]
    keys += [k for k in m if k.startswith("share/") and m[k] is not None][: 4 - min(len(keys), 4)]
    keys += [f for k, fs in FALLBACK.items() if k in reasons for f in fs if m.get(f) is not None]
    if weak:  # the judge-free numbers first, the weak judge's after them, then its tag
        keys = [k for k in keys if not stands_on_judge(k)] + [k for k in keys if stands_on_judge(k)]
    shown = [f"{k}: {reasons[k]}" if m.get(k) is None else f"{k}={m[k]:.3f}" for k in keys]
    if weak and any(stands_on_judge(k) for k in keys):
        shown[-1] += " " + WEAK_TAG
    if not shown:
        shown = ["no headline metric (all of them: dynamics metrics)"]
    return f"[{e.get('run', '?')}] eval  step {e['step']:>4}  {name}: " + "  ".join(shown) + f"  ({e['seconds']:.1f} s)"


def format_duration(seconds: float) -> str:
    """`45 s`, `12 min`, `2.3 h`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_progress(e: dict) -> str:
    """Progress inside a long evaluation: answers generated of the total, the measured speed, time left."""
    if e["left_s"] is None:
        return (f"[{e.get('run', '?')}] evaluating step {e['step']:>4}  {e['evaluation']}: generating {e['total']} "
                "answers; progress and the time left every 30 s")
    decoding = e.get("decoding")
    tokens = e["tokens"] + (decoding[0] * decoding[1] if decoding else 0)  # decoded ones: an upper bound
    speed = tokens / e["seconds"] if e["seconds"] > 0 else 0.0
    now = f", {decoding[0]} more at token {decoding[1]} of <= {decoding[2]}," if decoding else ""
    line = (f"[{e.get('run', '?')}] evaluating step {e['step']:>4}  {e['evaluation']}: {e['done']}/{e['total']} answers "
            f"generated{now} in {format_duration(e['seconds'])} ({speed:.0f} tokens/s); "
            f"~{format_duration(e['left_s'])} more to generate the rest" + (" (at most)" if decoding else ""))
    if e["left_s"] >= 3600:
        line += ", then judging: HOURS on this device"
    return line


def format_event(e: dict) -> str | None:
    run = e.get("run", "?")
    kind = e.get("type")
    if kind == "train_start":
        how = "resuming at step %d" % e["start_step"] if e["start_step"] else "starting"
        cpu = f", {e['threads']} torch thread(s) each" if e.get("threads") else ""
        if e.get("cpu_priority") not in (None, "normal"):
            cpu += f", {e['cpu_priority']} (evaluation first)"
        return (f"[{run}] train {how}: {e['total_steps']} optimizer steps, {e['examples']} examples, "
                f"{e['world']} worker(s){cpu}")
    if kind == "train_step":
        gn = e.get("train/grad_norm")
        return (f"[{run}] train step {e['train/step']:>4}/{e['total_steps']}  loss {e['train/loss']:.4f}  "
                f"lr {e['train/lr']:.2e}  " + (f"grad-norm {gn:.3f}  " if gn is not None else "")
                + f"{e['train/step_seconds']:.1f} s")
    if kind == "checkpoint":
        return f"[{run}] checkpoint step {e['step']} saved -> evaluation queue"
    if kind == "eval":
        return format_eval(e)
    if kind == "eval_progress":
        return format_progress(e)
    if kind == "alert":
        return f"[{run}] {e['text']}"
    if kind == "message":
        return f"[{run}] {e['text']}"
    return None


class ProgressPrinter:
    """Polls tracker actors for events and prints one line each. Use as a context manager."""

    def __init__(self, trackers: dict, out=None, interval: float = 0.5, pool=None):
        self.trackers = dict(trackers)
        self._out = out  # None: whatever sys.stdout is when a line is printed (not when this module was imported)
        self.interval = interval
        self.pool = pool
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="dynamics-progress")
        self._last_status = ""
        self._polls: dict = {}  # run id -> the poll_events call not answered yet
        self._draining = threading.Lock()  # the exit's drain and a last loop pass never poll at once

    @property
    def out(self):
        return self._out if self._out is not None else sys.stdout

    def add(self, run_id: str, tracker) -> None:
        self.trackers[run_id] = tracker

    def drain(self, wait: float = 0.0) -> None:
        """Print the events every tracker has. A poll still unanswered (a tracker busy starting, e.g. W&B
        online timing out) is kept and waited on next time, never asked again: its answer holds events."""
        with self._draining:  # the loop thread (still finishing a pass after the exit's join timed out) and
            self._drain(wait)  # the exit's drains take turns: no poll answered twice, none left behind

    def _drain(self, wait: float) -> None:
        for run_id, t in list(self.trackers.items()):
            if isinstance(t, str):  # a tracker a sweep trial will create: look it up by name
                t = find_actor(t)
                if t is None:
                    continue
                self.trackers[run_id] = t
            ref = self._polls.pop(run_id, None)
            if ref is None:
                ref = t.poll_events.remote()
            try:
                ready, _ = ray.wait([ref], timeout=wait)
                if not ready:
                    self._polls[run_id] = ref
                    continue
                events = ray.get(ref)
            except Exception:
                continue
            for e in events:
                line = format_event(e)
                if line:
                    print(line, file=self.out, flush=True)
            if events and hasattr(t, "ack"):  # the tracker may end once every event is acknowledged
                t.ack.remote(len(events))

    def _loop(self) -> None:
        last_status = 0.0
        while not self._stop.is_set():
            self.drain()
            if self.pool is not None and time.monotonic() - last_status > 10:
                last_status = time.monotonic()
                self._print_lag()
            self._stop.wait(self.interval)

    def _print_lag(self) -> None:
        try:
            status = ray.get(self.pool.status.remote(), timeout=10)
        except Exception:
            return
        behind = {r: s for r, s in status.items() if s["queued"] > 1}
        if behind:
            line = "evaluation queue: " + ", ".join(f"{r} {s['queued']} queued ({s['lag_steps']} steps behind)"
                                                    for r, s in sorted(behind.items()))
            if line != self._last_status:
                print(line, file=self.out, flush=True)
                self._last_status = line

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        """Print every event the trackers hold now: first the answers of polls already sent, then a fresh
        poll, since events can reach a tracker after an earlier poll was answered (the last lines)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.drain(wait=30)
        self.drain(wait=30)
