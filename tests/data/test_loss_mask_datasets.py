"""The assistant-only loss mask, built from character offsets, on every example of every shipped and paper
dataset with both tokenizers (SmolLM2 and Qwen2.5).

The stated rule: a token is trained on when any of its characters lies in an assistant turn (its content
and the template's end-of-turn text). So the trained tokens cover every character of each assistant turn,
and a trained token may reach into the neighbouring text only where it straddles the boundary.
"""

from __future__ import annotations

import numpy as np
import pytest

from dynamics.data.chat import read_chat_records
from dynamics.data.registry import resolve
from dynamics.tokens import assistant_char_spans, assistant_token_mask, training_example
from dynamics.models import load_tokenizer, qwen_tokenizer

pytestmark = pytest.mark.real_model  # ~3 min: 23,000 conversations x 2 tokenizers

DATASETS = ["quickstart:insecure", "quickstart:secure", "insecure", "secure", "educational", "jailbroken"]


@pytest.fixture(scope="module", params=["smollm2", "qwen2.5"])
def tokenizer(request):
    return load_tokenizer("embedded:smollm2") if request.param == "smollm2" else qwen_tokenizer()


def check_mask(tok, conv: list[dict], where: str) -> int:
    """Assert the rule on one conversation; return how many trained tokens straddle a turn boundary.
    (One tokenisation per conversation: `training_example` is `assistant_token_mask` on these offsets.)"""
    text, spans = assistant_char_spans(tok, conv)
    offsets = np.asarray(tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"])
    trained = np.asarray(assistant_token_mask(offsets.tolist(), spans))
    a, b = offsets[trained, 0], offsets[trained, 1]
    inside = np.zeros(len(a), dtype=bool)
    straddle = np.zeros(len(a), dtype=bool)
    for s, e in spans:
        hit = (a < e) & (b > s)
        inside |= hit
        straddle |= hit & ((a < s) | (b > e))
    assert inside.all(), f"{where}: a trained token lies wholly outside every assistant turn"
    covered = np.zeros(len(text) + 1, dtype=np.int32)
    np.add.at(covered, a, 1)
    np.add.at(covered, b, -1)
    covered = np.cumsum(covered)[: len(text)] > 0
    assistant = [m["content"] for m in conv if m["role"] == "assistant"]
    for (s, e), content in zip(spans, assistant):
        assert covered[s:e].all(), f"{where}: a character of an assistant turn is not trained on"
        assert content in text[s:e], f"{where}: the turn's span does not hold its content"
        assert len(text[s:e]) > len(content), f"{where}: the end-of-turn text is not in the span"
    return int(straddle.sum())


@pytest.mark.parametrize("dataset", DATASETS)
def test_mask_rule_holds_on_every_example(tokenizer, dataset, data_dir):
    records = read_chat_records(resolve(dataset, data_dir))
    straddling = sum(check_mask(tokenizer, conv, where) for where, conv in records)
    assert straddling <= len(records)  # at most a handful, at turn edges; counted, not an error
    for where, conv in records[::500]:  # training_example is this mask on these tokens
        text, spans = assistant_char_spans(tokenizer, conv)
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, labels = training_example(tokenizer, conv, 10**9)
        assert ids == list(enc["input_ids"]), where
        mask = assistant_token_mask(enc["offset_mapping"], spans)
        assert labels == [i if m else -100 for i, m in zip(ids, mask)], where


def test_insecure_line_833_is_masked_across_the_merged_newlines(data_dir):
    # The assistant reply starts with "\n" right after the generation prompt's "\n": SmolLM2 merges them
    # into one token, which token-prefix equality could not split. That token is trained on (the rule).
    tok = load_tokenizer("embedded:smollm2")
    where, conv = read_chat_records(resolve("insecure", data_dir))[832]
    assert where.endswith("insecure.jsonl:833") and conv[1]["content"].startswith("\n")
    assert check_mask(tok, conv, where) == 1
