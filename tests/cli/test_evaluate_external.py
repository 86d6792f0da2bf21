"""`dynamics evaluate` on a folder of PEFT adapters that dynamics did not train: each adapter is evaluated at
the step its folder names, the numbers are those of the adapter applied to the base model (checked against
the family run here directly on each adapter), and the folder becomes a run that later evaluations extend."""

from __future__ import annotations

import json

import pytest

from dynamics.cli import main as cli
from dynamics.tracking.store import MetricStore
from tests.conftest import DATA_DIR

pytestmark = pytest.mark.e2e


def make_adapters(folder, steps):
    """LoRA adapters of tiny:llama with random, non-zero B (as trained ones are), saved as PEFT does."""
    import torch
    from peft import LoraConfig, get_peft_model

    from dynamics.models import load_model

    for i, step in enumerate(steps):
        torch.manual_seed(i)
        model = get_peft_model(load_model("tiny:llama"), LoraConfig(
            r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        model.save_pretrained(folder / f"checkpoint-{step}")


def test_folder_of_adapters_from_elsewhere(ray_local, tmp_path):
    from dynamics.engines.hf import HFEngine
    from dynamics.evals.base import EvalContext
    from dynamics.evals.logprob import LogprobFamily, load_items
    from dynamics.records import RunInfo

    folder = tmp_path / "other_study"
    folder.mkdir()
    make_adapters(folder, [20, 10])
    (folder / "README.md").write_text("not an adapter")  # ignored
    out = tmp_path / "results"
    args = ["evaluate", str(folder), "--base-model", "tiny:llama", "--name", "other", "--output", str(out),
            "--evals", "logprob", f"data.data_dir={DATA_DIR}", "wandb.mode=disabled"]
    assert cli(args) == 0
    run_dir = out / "other" / "runs" / "other-external-s0"
    entries = json.loads((run_dir / "checkpoints.json").read_text())
    assert [(e["step"], e["adapter"]) for e in entries] == [(10, str(folder / "checkpoint-10")),
                                                            (20, str(folder / "checkpoint-20"))]
    store = MetricStore(out / "other")
    assert store.evaluations("other-external-s0") == {10: {"logprob"}, 20: {"logprob"}}
    df = store.metrics()
    got = {(int(s), m): v for s, m, v in zip(df.step, df.metric, df.value)}

    # the same numbers, computed here directly with each adapter on the base model
    engine = HFEngine.load("tiny:llama")
    family = LogprobFamily(load_items(DATA_DIR / "evaluation" / "logprob_items.json"))
    info = RunInfo("other", "other-external-s0", "external", 0, "tiny:llama")
    expected = {}
    for step in (10, 20):
        engine.use_adapter(folder / f"checkpoint-{step}")
        for m, v in family.evaluate(engine, EvalContext(info, step, 0)).metrics.items():
            expected[(step, m)] = v
            assert got[(step, m)] == pytest.approx(v, abs=1e-5), (step, m)
    # the adapters differ, and so do their numbers
    key = "logprob/pivotal_tokens/logp_misaligned"
    assert expected[(10, key)] != pytest.approx(expected[(20, key)], abs=1e-4)

    # the folder is now a run: evaluating it again (by its results dir) finds nothing to do
    before = sorted(p.name for p in store.root.rglob("*.parquet"))
    assert cli(["evaluate", str(out / "other"), "--evals", "logprob"]) == 0
    assert sorted(p.name for p in store.root.rglob("*.parquet")) == before
