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


def test_the_last_events_are_printed_when_the_printer_closes(ray_local):
    """Issue 22 item 8: an event that reaches the tracker after the printer's last poll was sent (its answer
    taken before the event came) was never printed: the exit only waited on that old poll."""
    ray = ray_local

    class Tracker:
        def __init__(self):
            self.events = []

        def event(self, e):
            self.events.append(e)

        def poll_events(self):
            out, self.events = self.events, []
            time.sleep(1.0)  # the answer is on its way while the last event arrives
            return out

    tracker = ray.remote(Tracker).options(num_cpus=0, max_concurrency=4).remote()
    out = io.StringIO()
    with ProgressPrinter({"r": tracker}, out=out, interval=1000):  # the loop polls once, at the start
        time.sleep(0.3)
        ray.get(tracker.event.remote({"type": "message", "run": "r", "text": "the last line"}))
    assert out.getvalue() == "[r] the last line\n"
    ray.kill(tracker)
