"""`dynamics evaluate` goes on when the evaluator pool dies under it (issue 22 item 4: a raw
`ActorUnavailableError` traceback, exit 1): a fresh pool evaluates what the store does not hold, nothing
twice, and every result's console line is printed."""

from __future__ import annotations

import io
import threading
import time
from contextlib import redirect_stdout

import torch

from dynamics.orchestration.evaluate import evaluate_targets, external_target
from dynamics.orchestration.names import find_actor, pool_name
from dynamics.tracking.store import MetricStore


def _adapters(root, steps):
    from peft import LoraConfig, get_peft_model

    from dynamics.models import load_model

    model = get_peft_model(load_model("tiny:llama"), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"]))
    out = []
    for step in steps:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.add_(0.01 * (step + 1))
        model.save_pretrained(str(root / f"checkpoint-{step}"))
        out.append((step, str(root / f"checkpoint-{step}")))
    return out


def test_a_pool_lost_during_evaluate_is_replaced(ray_local, tmp_path):
    ray = ray_local
    steps = [10, 20, 30, 40]
    target = external_target(_adapters(tmp_path / "adapters", steps), ["adapter"], "lost", str(tmp_path / "results"),
                             "tiny:llama", None, ["wandb.enabled=false", "eval.judge.kind=none"])
    killed = []

    def kill_the_pool_once_it_has_the_run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pool = find_actor(pool_name("lost"))
            try:
                if pool is not None and target.cfg.run_id in ray.get(pool.status.remote(), timeout=5):
                    ray.kill(pool, no_restart=False)  # Ray restarts it empty; the wait in flight fails
                    killed.append(time.monotonic())
                    return
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_pool_once_it_has_the_run)
    killer.start()
    out = io.StringIO()
    with redirect_stdout(out):
        result = evaluate_targets([target], ["adapter"])
    killer.join()
    assert killed, "the pool was not killed"
    assert result["errors"] == [] and result["written"][target.cfg.run_id] == [(s, "adapter") for s in steps]
    assert sorted(MetricStore(target.cfg.experiment_dir).evaluations(target.cfg.run_id)) == steps
    lines = [x for x in out.getvalue().splitlines() if "] eval  step" in x]
    assert sorted(int(x.split("step")[1].split()[0]) for x in lines) == steps, out.getvalue()
    assert "evaluator pool lost" in out.getvalue() and "4 new (step, evaluation) result(s)" in out.getvalue()
