"""Ray's driver prints the raylet's worker-count warning (issue 22 item 10: a sweep showed `(raylet) WARNING:
8 PYTHON worker processes have been started ...` with colour codes); dynamics drops it, and only it."""

import ray._private.worker as ray_worker

from dynamics.orchestration.run import ensure_ray


def test_the_worker_count_warning_is_dropped_and_other_raylet_lines_shown(ray_local, capsys):
    ensure_ray(4)  # a cluster already up: the filter is installed once, before ray.init
    noise = ("WARNING: 8 PYTHON worker processes have been started on node: abc with address: 1.2.3.4, which is "
             "2x the maximum expected startup concurrency (4).")
    ray_worker.print_to_stdstream({"lines": [noise], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    assert capsys.readouterr().out == ""
    ray_worker.print_to_stdstream({"lines": ["a raylet line that matters"], "pid": "raylet", "is_err": False},
                                  ignore_prefix=False)
    assert "a raylet line that matters" in capsys.readouterr().out
