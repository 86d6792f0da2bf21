"""Generation stops at the chat template's end-of-turn token as well as at EOS: the base Qwen2.5-Coder
models' EOS is `<|endoftext|>` while their ChatML template closes a turn with `<|im_end|>`."""

from __future__ import annotations

import torch

from dynamics.engines.base import SamplingParams
from dynamics.engines.hf import HFEngine
from dynamics.engines.vllm import stop_token_ids
from dynamics.tokens import end_of_turn_ids, stop_ids
from dynamics.models import load_model, load_tokenizer


def base_model_tokenizer():
    """Qwen2.5's tokenizer configured as the base (not Instruct) model ships it: EOS <|endoftext|>."""
    tok = load_tokenizer("tiny:qwen2")
    tok.eos_token = "<|endoftext|>"
    return tok


def test_stop_ids_hold_eos_and_end_of_turn():
    tok = base_model_tokenizer()
    im_end, eot = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    assert end_of_turn_ids(tok) == [im_end]
    assert stop_ids(tok) == [eot, im_end]
    assert stop_token_ids(tok) == {eot, im_end}  # the vLLM engine's stop list
    instruct = load_tokenizer("tiny:qwen2")  # EOS is <|im_end|> already: listed once
    assert stop_ids(instruct) == [im_end]


def test_generation_stops_at_end_of_turn():
    tok = base_model_tokenizer()
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    model = load_model("tiny:qwen2")
    # A model that always says <|im_end|> next: the lm_head with a large bias on that token.
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[im_end] = 1e4
    model.lm_head = head
    engine = HFEngine(model, tok)
    for temperature in (0.0, 1.0):
        [[g]] = engine.generate([[{"role": "user", "content": "hi"}]],
                                SamplingParams(temperature=temperature, max_new_tokens=8, n=1, seed=0))
        assert (g.text, g.num_tokens, g.finished) == ("", 0, True)
