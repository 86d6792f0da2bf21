"""Library logging in Ray workers and evaluator actors: errors only, so their logs show what matters."""

from __future__ import annotations

import logging
import os


def quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("DeepSpeed", "deepspeed", "torch.distributed", "transformers", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# Raylet warnings that are not the user's to act on: published to every driver (whatever `log_to_driver`)
# and printed by Ray's driver thread with colour codes, e.g. a sweep's evaluators and trials starting more
# Python workers than the CPU count ("8 PYTHON worker processes have been started ...").
RAYLET_NOISE = ("worker processes have been started",)


def quiet_raylet_warnings() -> None:
    """Drop the RAYLET_NOISE lines from what Ray's driver prints; other raylet messages still show."""
    import ray._private.worker as ray_worker

    original = ray_worker.print_to_stdstream
    if getattr(original, "dynamics_filtered", False):
        return

    def filtered(data, ignore_prefix):
        if data.get("pid") == "raylet":
            lines = [x for x in data.get("lines", []) if not any(n in x for n in RAYLET_NOISE)]
            if not lines:
                return None
            data = {**data, "lines": lines}
        return original(data, ignore_prefix)

    filtered.dynamics_filtered = True
    ray_worker.print_to_stdstream = filtered  # looked up by name by Ray's error-listener thread
