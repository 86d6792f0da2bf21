"""A tracker slow to start (W&B online timing out) loses none of its first events on the console: the
printer keeps its unanswered poll and waits on it, instead of asking again and dropping the answer."""

from __future__ import annotations

import io
import time

from dynamics.orchestration.progress import ProgressPrinter


def test_first_events_of_a_slow_tracker_are_printed(ray_local):
    ray = ray_local

    class SlowTracker:  # defined here: Ray ships it by value (pytest's module name is not importable there)
        def __init__(self, seconds: float):
            time.sleep(seconds)  # what a W&B online init against an unreachable server does
            self.events = [{"type": "message", "run": "r", "text": "warning: W&B online init failed"}]

        def poll_events(self):
            out, self.events = self.events, []
            return out

    tracker = ray.remote(SlowTracker).options(num_cpus=0).remote(2.0)
    out = io.StringIO()
    printer = ProgressPrinter({"r": tracker}, out=out, interval=0.1)
    printer.drain()  # today: blocks, and an answer that comes late is dropped
    assert out.getvalue() == ""
    deadline = time.monotonic() + 60
    while "warning" not in out.getvalue() and time.monotonic() < deadline:
        printer.drain()
        time.sleep(0.1)
    assert out.getvalue() == "[r] warning: W&B online init failed\n"
    ray.kill(tracker)
