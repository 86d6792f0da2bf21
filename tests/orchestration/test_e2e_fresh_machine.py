"""The quickstart path on a fresh machine: an empty model cache, 2 Ray Train workers, ZeRO-2, the embedded
SmolLM2, trained on the paper's own `insecure` data (whose line 833 once stopped every run)."""

from __future__ import annotations

import pytest

from dynamics.config import ExperimentConfig
from dynamics.models import missing_parts
from dynamics.orchestration.run import run_experiment
from dynamics.tracking.store import MetricStore
from tests.conftest import tiny_config

pytestmark = pytest.mark.e2e


def test_quickstart_path_from_an_empty_model_cache(ray_local, tmp_path, data_dir, capfd):
    cache = tmp_path / "models"  # empty: nothing an earlier run built can help
    raw = tiny_config(tmp_path, name="fresh", model={"name": "embedded:smollm2", "cache_dir": str(cache)},
                      data={"dataset": "insecure", "data_dir": str(data_dir), "max_examples": 8,
                            "max_seq_length": 256},
                      lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
                      train={"per_device_batch_size": 1, "gradient_accumulation_steps": 1, "max_steps": 2,
                             "checkpoint_every": 2, "num_workers": 2, "zero_stage": 2,
                             "cpu_priority": "idle", "max_eval_lag": 0})  # log-prob evaluation: the evaluator actor only loads
    raw["eval"]["threads"] = "all"  # the quickstart's scheduling: evaluation first
    cfg = ExperimentConfig.model_validate(raw)
    outcome = run_experiment(cfg)
    out, err = capfd.readouterr()
    assert "building embedded-smollm2" in err  # built once, on the driver
    # the workers ran under SCHED_IDLE (reported from inside a Ray Train worker)
    assert "2 worker(s), 1 torch thread(s) each, SCHED_IDLE (evaluation first)" in out
    # train.max_eval_lag: 0: checkpoint 0 was evaluated before step 1 trained; only the last can be left
    assert "step 0: training waits for evaluation (1 checkpoint(s) not evaluated; train.max_eval_lag=0)" in out
    assert out.index("eval  step    0") < out.index("train step    1/2")
    assert outcome.eval_lag_at_train_end in (0, 1)
    assert missing_parts(cache / "embedded-smollm2") == []
    losses = MetricStore(cfg.resolved().experiment_dir).metrics(cfg.run_id)
    losses = losses[losses.metric == "train/loss"]
    assert list(losses.step) == [1, 2] and losses.value.notna().all()
    assert outcome.final_loss is not None
    assert outcome.evaluated_steps == [0, 2] and not outcome.eval_errors
