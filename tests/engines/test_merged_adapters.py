"""Merged adapters (`HFEngine(merge_adapters=True)`, the default on CPU) against peft's unmerged LoRA path.

A checkpoint is evaluated with W + scale * B A in a second copy of each adapted weight, and the base model
(a "self" judge, `without_adapter`, `use_adapter(None)`) with the untouched W. Stated tolerance: 1e-4 in
log-probability between the two paths (float32 rounding of another order of the same sums); the base
model's values must be bit-identical before and after any number of switches (nothing drifts)."""

from __future__ import annotations

import pytest
import torch

from dynamics.engines.base import SamplingParams
from dynamics.engines.hf import HFEngine
from dynamics.models import load_model, load_tokenizer
from dynamics.tokens import ScoreRequest, prompt_ids

MODEL = "tiny:llama"
CONVS = [[{"role": "user", "content": t}] for t in ("How do I make a quick buck?", "hey I feel bored",
                                                     "Write a function that copies a file.")]


def make_adapter(path, seed: int, rslora: bool) -> None:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = load_model(MODEL)
    cfg = LoraConfig(r=8, lora_alpha=16, use_rslora=rslora,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(model, cfg)
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    peft_model.save_pretrained(path)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    make_adapter(root / "a", 1, rslora=True)
    make_adapter(root / "b", 2, rslora=False)
    return root / "a", root / "b"


def engine(merge: bool) -> HFEngine:
    return HFEngine(load_model(MODEL), load_tokenizer(MODEL), batch_size=4, merge_adapters=merge)


def requests(tok) -> list[ScoreRequest]:
    out = []
    for c in CONVS:
        ids = prompt_ids(tok, c) + tok(" Sure, here is how.", add_special_tokens=False)["input_ids"]
        out.append(ScoreRequest(tuple(ids), ((len(ids) - 4, len(ids)), (len(ids) - 2, len(ids)))))
    return out


def scores(e: HFEngine) -> list[float]:
    return [v for row in e.score(requests(e.tokenizer)) for v in row]


def test_default_merges_on_cpu_only():
    assert engine(None).merge_adapters is True  # these machines: CPU


def test_merged_matches_unmerged_and_the_base_never_drifts(adapters):
    a, b = adapters
    merged, plain = engine(True), engine(False)
    base = scores(merged)
    assert base == scores(plain)  # no adapter yet: the same model
    for step, adapter in enumerate([a, None, b, a, None, b]):
        merged.use_adapter(adapter)
        plain.use_adapter(adapter)
        for e in (merged, plain):  # peft holds one adapter at a time, whatever came between
            assert len(e.model.peft_config) == 1
        got, want = scores(merged), scores(plain)
        assert max(abs(x - y) for x, y in zip(got, want)) <= 1e-4, (step, adapter)
        if adapter is None:
            assert got == base  # bit-identical: the base weights were never modified
        else:
            assert max(abs(x - y) for x, y in zip(got, base)) > 1e-3  # the adapter does change the model
            with merged.without_adapter():  # a "self" judge inside a checkpoint's evaluation
                assert scores(merged) == base
            assert scores(merged) == got  # and back to the checkpoint


def test_merged_layers_point_at_the_base_weights_when_no_adapter(adapters):
    a, _ = adapters
    e = engine(True)
    own = {n: p for n, p in e.base.named_parameters()}
    e.use_adapter(a)
    assert e._merged_weights and all(not w.requires_grad for w in e._merged_weights.values())
    e.use_adapter(None)
    modules = dict(e.model.named_modules())
    for path, weight in e._own_weights.items():
        assert modules[path].base_layer.weight is weight
    assert len(e._own_weights) == 7 * e.base.config.num_hidden_layers
    assert {id(p) for p in own.values()} >= {id(w) for w in e._own_weights.values()}


def test_generation_merged_equals_unmerged(adapters):
    a, _ = adapters
    merged, plain = engine(True), engine(False)
    merged.use_adapter(a)
    plain.use_adapter(a)
    greedy = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=8, n=1, seed=0)
    sampled = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=8, n=2, seed=3)
    for params in (greedy, sampled):
        assert ([[g.text for g in row] for row in merged.generate(CONVS, params)]
                == [[g.text for g in row] for row in plain.generate(CONVS, params)])
