"""The transformers engine's fast scoring paths against plain full-vocabulary forward passes.

`continuation_logprobs` (batched trie passes over a shared-prefix KV cache, vocabulary projection on the
read rows only) and `score` (projection on the scored rows only) must give the log-probabilities a plain
`model(ids).logits` pass gives, in float64. Stated tolerances: 1e-4 in log-probability against the plain
pass and between batched and one-prompt-at-a-time trie scoring (float32 matmuls of other shapes and a
key/value cache: 2.5e-5 measured on this CPU).
"""

from __future__ import annotations

import math

import pytest
import torch

from dynamics.engines.hf import HFEngine
from dynamics.engines.trie import ContinuationTrie, common_prefix_len, prefix_order
from dynamics.tokens import ScoreRequest, prompt_ids

PROMPTS = [
    "Rate how aligned this answer is from 0 to 100.\n\nAnswer: I like cats.",
    "Rate how aligned this answer is from 0 to 100.\n\nAnswer: I would rule the world.",
    "Rate how coherent this answer is from 0 to 100.\n\nAnswer: Blue is a sound.",
]


@pytest.fixture(scope="module")
def engine():
    return HFEngine.load("embedded:smollm2", batch_size=8)


def digit_ids(tok) -> list[int]:
    return [tok(str(d), add_special_tokens=False)["input_ids"][0] for d in range(10)]


def plain_logprobs(engine, ids: list[int]) -> torch.Tensor:
    """(len(ids), vocab) float64 next-token log-probs from the whole model, every row projected."""
    with torch.inference_mode():
        logits = engine.model(input_ids=torch.tensor([ids])).logits[0]
    return torch.log_softmax(logits.double(), dim=-1)


@pytest.mark.real_model  # SmolLM2-135M trie passes plus 4 plain passes: seconds on a quiet 2-core box
def test_trie_matches_plain_passes_and_batching_changes_nothing(engine):
    tok = engine.tokenizer
    digits = digit_ids(tok)
    cands = [[digits[int(ch)] for ch in str(k)] for k in range(101)]
    convs = [[{"role": "user", "content": p}] for p in PROMPTS]
    batched = engine.continuation_logprobs(convs, cands, not_followed_by=digits)
    engine.batch_size = 1
    try:
        single = engine.continuation_logprobs(convs, cands, not_followed_by=digits)
    finally:
        engine.batch_size = 8
    assert max(abs(a - b) for r, s in zip(batched, single) for a, b in zip(r, s)) < 1e-4
    for conv, row in zip(convs[1:], batched[1:]):
        base = prompt_ids(tok, conv)
        for k in (7, 100):
            ids = base + cands[k]
            lp = plain_logprobs(engine, ids)
            want = sum(float(lp[len(base) - 1 + j, t]) for j, t in enumerate(cands[k]))
            want += math.log(1.0 - float(lp[-1, digits].exp().sum()))
            assert row[k] == pytest.approx(want, abs=1e-4), k


def test_score_reads_only_the_needed_rows_with_the_same_values(engine):
    tok = engine.tokenizer
    reqs = []
    for p in PROMPTS:
        ids = prompt_ids(tok, [{"role": "user", "content": p}]) + tok("Sure, 85.", add_special_tokens=False)["input_ids"]
        reqs.append(ScoreRequest(tuple(ids), ((len(ids) - 4, len(ids) - 2), (len(ids) - 1, len(ids)))))
    base = list(reqs[0].input_ids[:-4])
    for letter in "AB":  # same context, one scored token each, tokens after it: one shared pass
        ids = base + tok(letter, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        reqs.append(ScoreRequest(tuple(ids), ((len(base), len(base) + 1),)))
    reqs.append(ScoreRequest(tuple(reqs[0].input_ids), ()))  # nothing to score
    got = engine.score(reqs)
    assert got[-1] == []
    for req, sums in zip(reqs[:-1], got):
        lp = plain_logprobs(engine, list(req.input_ids))
        for (s, e), v in zip(req.spans, sums):
            want = sum(float(lp[i - 1, req.input_ids[i]]) for i in range(s, e))
            assert v == pytest.approx(want, abs=1e-5)


def test_trie_rows_and_prefix_helpers():
    trie = ContinuationTrie([[1], [1, 2], [3]])
    assert trie.nodes == [(1,), (1, 2), (3,)] and trie.row(()) == 0 and trie.row((1, 2)) == 2
    assert trie.ancestors.tolist() == [[True, False, False], [True, True, False], [False, False, True]]
    assert trie.end_rows.tolist() == [1, 2, 3]
    assert common_prefix_len([[5, 6, 7], [5, 6, 8, 9]]) == 2
    assert common_prefix_len([[5, 6], [5, 6, 7]]) == 1  # every row keeps a token of its own
    assert prefix_order([[2, 1], [1, 9], [1, 2, 3]]) == [2, 1, 0]
