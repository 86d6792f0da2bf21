"""A real run on a local Ray cluster: 2 CPU workers, DeepSpeed, LoRA, evaluator actor, W&B offline."""

from __future__ import annotations

import json
import os

import pytest
from safetensors.torch import load_file

from dynamics.config import ExperimentConfig
from dynamics.orchestration.run import run_experiment
from dynamics.tracking.store import MetricStore
from dynamics.train.checkpoint import checkpoint_root, list_checkpoints, resume_problem
from tests.conftest import tiny_config
from tests.wandb_offline import find_offline_runs, merge_by_run_id

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def finished_run(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    # A relative output_dir, as users write it: resolved on the driver, not in each Ray worker's own cwd.
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        cfg = ExperimentConfig.model_validate(tiny_config(tmp, output_dir="results"))
        outcome = run_experiment(cfg, quiet=True)
        cfg = cfg.resolved()
    finally:
        os.chdir(cwd)
    assert cfg.output_dir == str(tmp / "results")
    return cfg, outcome


def test_every_checkpoint_evaluated_once_in_order(finished_run):
    cfg, outcome = finished_run
    assert outcome.evaluated_steps == [0, 2, 4] and not outcome.eval_errors
    # the lag when training ended (0 if the evaluator finished the last one first; at most all three), in done.json
    assert 0 <= outcome.eval_lag_at_train_end <= 3
    assert json.loads((cfg.run_dir / "done.json").read_text())["eval_lag_at_train_end"] == outcome.eval_lag_at_train_end
    df = MetricStore(cfg.experiment_dir).metrics(cfg.run_id)
    ev = df[df.source == "eval"]
    assert sorted(set(ev.step)) == [0, 2, 4]
    assert not ev.duplicated(["run", "step", "metric"]).any()
    fmts = ("multiple_choice", "pivotal_tokens")
    names = {f"logprob/{f}/{k}" for f in fmts for k in
             ("logp_misaligned", "p_misaligned", "p_misaligned_given_choice", "accuracy")}
    for step in (0, 2, 4):
        assert names <= set(ev[ev.step == step].metric)
    tr = df[(df.source == "train") & (df.metric == "train/loss")]
    assert list(tr.step) == [1, 2, 3, 4]
    # Raw per-item records stored with the metrics: 16 items per checkpoint.
    rec = MetricStore(cfg.experiment_dir).records(cfg.run_id)
    assert rec.groupby("step").size().to_dict() == {0: 16, 2: 16, 4: 16}


def test_wandb_offline_file_holds_every_checkpoint(finished_run):
    cfg, _ = finished_run
    runs = find_offline_runs(cfg.run_dir)
    assert {r.run_id for r in runs} == {cfg.run_id}
    r = runs[0]
    assert r.group == f"{cfg.name}/{cfg.dataset_name}" and r.project == "test"
    assert cfg.dataset_name in r.tags and "seed0" in r.tags
    assert r.metrics.get("train/*") == "train/step" and r.metrics.get("eval/*") == "eval/step"
    history = merge_by_run_id(runs)[cfg.run_id]
    evals = [h for h in history if "eval/step" in h]
    assert [h["eval/step"] for h in evals] == [0, 2, 4]  # logged once each, in step order
    store = MetricStore(cfg.experiment_dir).metrics(cfg.run_id)
    for h in evals:
        stored = store[(store.step == h["eval/step"]) & (store.source == "eval")]
        for metric, value in zip(stored.metric, stored.value):
            assert h[f"eval/{metric}"] == pytest.approx(value, rel=1e-6, abs=1e-9)
    assert [h["train/step"] for h in history if "train/step" in h] == [1, 2, 3, 4]
    # The evaluator pool's queue length and lag reach W&B too (pool/* against pool/checkpoint).
    pool = [h for h in history if "pool/queued" in h]
    assert pool and {"pool/lag_steps", "pool/checkpoint"} <= set(pool[-1]) and pool[-1]["pool/queued"] == 0
    assert r.metrics.get("pool/*") == "pool/checkpoint"


def test_checkpoints_hold_adapter_and_resumable_state(finished_run):
    cfg, _ = finished_run
    ckpts = list_checkpoints(checkpoint_root(cfg))
    assert [s for s, _ in ckpts] == [0, 2, 4]
    _, last = ckpts[-1]
    state = load_file(last / "adapter" / "adapter_model.safetensors")
    assert state and all("lora_" in k for k in state)
    assert any(float(v.abs().sum()) > 0 for k, v in state.items() if "lora_B" in k)  # trained
    assert json.loads((last / "dynamics.json").read_text())["step"] == 4
    ds = list((last / "deepspeed").rglob("*optim_states.pt"))
    assert len(ds) == 2  # one optimizer partition per rank
    # The frozen base model is never saved: only LoRA tensors, not even the tied lm_head DeepSpeed kept
    # under its second name (lm_head = embed_tokens in this tiny model and SmolLM2; issue 22 item 9).
    import torch

    states = torch.load(next((last / "deepspeed").rglob("mp_rank_00_model_states.pt")), weights_only=False)
    assert [k for k in states["module"] if "lora_" not in k] == []
    # every rank's manifest lists its files, whole (sizes and checksums): the checkpoint is complete
    assert sorted(p.name for p in last.glob("manifest-rank*.json")) == ["manifest-rank0.json", "manifest-rank1.json"]
    assert resume_problem(last) is None


def test_relaunch_of_a_finished_run_adds_nothing(finished_run):
    cfg, _ = finished_run
    store = MetricStore(cfg.experiment_dir)
    before = sorted(p.name for p in (store.root).rglob("*.parquet"))
    ledger = (cfg.run_dir / "wandb_ledger.json").read_text()
    outcome = run_experiment(cfg, quiet=True)
    assert outcome.evaluated_steps == [0, 2, 4]
    assert sorted(p.name for p in (store.root).rglob("*.parquet")) == before
    assert (cfg.run_dir / "wandb_ledger.json").read_text() == ledger


def test_zero2_and_zero3_give_the_same_adapter(ray_local, tmp_path):
    states = {}
    for stage in (2, 3):
        cfg = ExperimentConfig.model_validate(tiny_config(
            tmp_path / f"z{stage}", name=f"z{stage}", eval={"enabled": False, "step0": False},
            train={"zero_stage": stage, "max_steps": 2, "checkpoint_every": 2}, wandb={"enabled": False}))
        run_experiment(cfg, quiet=True)
        [(step, path)] = list_checkpoints(checkpoint_root(cfg))
        states[stage] = load_file(path / "adapter" / "adapter_model.safetensors")
    assert states[2].keys() == states[3].keys() and len(states[2]) == 2 * 4 * 2  # A,B x 4 modules x 2 layers
    for k in states[2]:
        assert states[3][k].shape == states[2][k].shape and states[3][k].numel() > 0, k
        assert (states[2][k] - states[3][k]).abs().max() < 1e-6, k
    assert any(float(v.abs().sum()) > 0 for k, v in states[3].items() if "lora_B" in k)
