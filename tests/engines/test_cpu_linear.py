"""oneDNN linear layers with packed weights (`dynamics.engines.cpu_linear`, the default on CPU in float32)
against torch's own path. Stated tolerance: 1e-4 in log-probability (another order of the same sums);
gradients and other dtypes take torch's path unchanged; a packed copy never outlives or misrepresents
its weight."""

from __future__ import annotations

import gc

import pytest
import torch

from dynamics.engines.base import SamplingParams
from dynamics.engines.cpu_linear import MAX_ROWS, PackedLinears, onednn_linear_available
from dynamics.engines.hf import HFEngine
from dynamics.models import load_model, load_tokenizer
from dynamics.tokens import ScoreRequest, prompt_ids

pytestmark = pytest.mark.skipif(not onednn_linear_available(), reason="this torch has no usable oneDNN")

CONVS = [[{"role": "user", "content": t}] for t in ("How do I make a quick buck?", "hey I feel bored",
                                                     "Write a function that copies a file.")]


def layers(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.GELU(), torch.nn.Linear(48, 8, bias=False))


def test_values_match_torch_for_any_rows_and_leading_dims():
    plain, packed = layers(), layers()
    installed = PackedLinears.install(packed)
    assert installed is not None and installed.layers == 2
    with torch.inference_mode():
        for shape in [(1, 32), (4, 32), (16, 32), (3, 7, 32), (MAX_ROWS, 32)]:
            x = torch.randn(*shape)
            got, want = packed(x), plain(x)
            assert got.shape == want.shape
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), shape
    assert installed.packed_weights == 2


def test_long_inputs_take_torchs_path_bit_for_bit():
    plain, packed = layers(), layers()
    installed = PackedLinears.install(packed)
    with torch.inference_mode():
        for shape in [(MAX_ROWS + 1, 32), (4, MAX_ROWS, 32)]:  # prefill, scoring, the judge's passes
            x = torch.randn(*shape)
            assert torch.equal(packed(x), plain(x))
    assert installed.packed_weights == 0


def test_training_takes_torchs_path_bit_for_bit():
    plain, packed = layers(), layers()
    PackedLinears.install(packed)
    x = torch.randn(5, 32)
    got, want = packed(x), plain(x)
    assert torch.equal(got, want)  # with gradients: F.linear itself
    got.sum().backward()
    want.sum().backward()
    assert torch.equal(packed[0].weight.grad, plain[0].weight.grad)


def test_other_dtypes_take_torchs_path():
    model = layers().double()
    PackedLinears.install(model)
    with torch.inference_mode():
        x = torch.randn(4, 32, dtype=torch.float64)
        assert torch.equal(model(x), torch.nn.functional.linear(
            torch.nn.functional.gelu(torch.nn.functional.linear(x, model[0].weight, model[0].bias)), model[2].weight))


def test_a_packed_copy_follows_its_weight():
    model = layers()
    installed = PackedLinears.install(model)
    lin = model[0]
    x = torch.randn(4, 32)
    with torch.no_grad():
        before = lin(x)
        lin.weight.add_(1.0)  # in place (an optimizer step): the version changes, the copy is remade
        assert torch.allclose(lin(x), torch.nn.functional.linear(x, lin.weight, lin.bias), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(lin(x), before)
        own = lin.weight
        other = torch.nn.Parameter(torch.randn(48, 32), requires_grad=False)
        lin.weight = other  # pointed at another weight (merged adapters): that weight's copy
        assert torch.allclose(lin(x), torch.nn.functional.linear(x, other, lin.bias), rtol=1e-5, atol=1e-5)
        n = installed.packed_weights
        lin.weight = own
        del other
        gc.collect()
        assert installed.packed_weights == n - 1  # the dropped weight's copy went with it
        assert torch.allclose(lin(x), torch.nn.functional.linear(x, own, lin.bias), rtol=1e-5, atol=1e-5)


def test_install_leaves_other_instances_alone():
    a, b = layers(), layers()
    PackedLinears.install(a)
    assert "forward" in a[0].__dict__ and "forward" not in b[0].__dict__
    assert PackedLinears.install(a).layers == 0  # installing twice wraps nothing twice


def engine(onednn: bool) -> HFEngine:
    return HFEngine(load_model("tiny:llama"), load_tokenizer("tiny:llama"), batch_size=4, onednn_linear=onednn)


def test_engine_default_is_onednn_on_cpu_float32():
    e = engine(None)
    assert e.packed is not None
    # every linear layer of the decoder and the vocabulary projection
    assert e.packed.layers == 7 * e.base.config.num_hidden_layers + 1


def test_engine_scores_and_generations_agree_with_torchs_path():
    fast, plain = engine(True), engine(False)
    assert plain.packed is None
    tok = fast.tokenizer
    reqs = []
    for c in CONVS:
        ids = prompt_ids(tok, c) + tok(" Sure, here is how.", add_special_tokens=False)["input_ids"]
        reqs.append(ScoreRequest(tuple(ids), ((len(ids) - 4, len(ids)),)))
    got = [v for row in fast.score(reqs) for v in row]
    want = [v for row in plain.score(reqs) for v in row]
    assert max(abs(x - y) for x, y in zip(got, want)) <= 1e-4
    conts = [[tok(str(d), add_special_tokens=False)["input_ids"][0]] for d in range(10)]
    got = fast.continuation_logprobs(CONVS, conts)
    want = plain.continuation_logprobs(CONVS, conts)
    assert max(abs(x - y) for gr, wr in zip(got, want) for x, y in zip(gr, wr)) <= 1e-4
    greedy = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=8, n=1, seed=0)
    assert ([[g.text for g in row] for row in fast.generate(CONVS, greedy)]
            == [[g.text for g in row] for row in plain.generate(CONVS, greedy)])
