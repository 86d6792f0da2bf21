"""LocalJudge over the real transformers engine: the tiny Llama (SmolLM2's real tokenizer and chat
template) with its output head replaced by a fixed bias, so the next-token distribution is known exactly."""

import math

import pytest
import torch

from dynamics.engines.hf import HFEngine
from dynamics.judges.aggregate import aggregate_0_100
from dynamics.judges.local import LocalJudge
from dynamics.models import load_model, load_tokenizer

# SmolLM2 splits numbers into digits: "8" and "9" are single tokens, "85" is not.
TARGET = {"8": 0.6, "9": 0.25, "NO": 0.1}  # the rest of the mass (0.05) is spread over the vocabulary


@pytest.fixture(scope="module")
def engine():
    tok = load_tokenizer("tiny:llama")
    model = load_model("tiny:llama")
    vocab = model.config.vocab_size
    head = torch.nn.Linear(model.config.hidden_size, vocab, bias=True)
    with torch.no_grad():
        head.weight.zero_()  # logits = bias, whatever the prompt
        rest = 0.05 / (vocab - len(TARGET))
        head.bias.fill_(math.log(rest))
        for text, p in TARGET.items():
            (token_id,) = tok.encode(text, add_special_tokens=False)
            head.bias[token_id] = math.log(p)
    model.lm_head = head
    return HFEngine(model, tok)


def test_score_is_the_aggregate_of_the_engine_top20(engine):
    judge = LocalJudge(engine, "tiny", number_mode="top_tokens")
    scores = judge.score_0_100(["Rate this answer from 0 to 100.", "Another prompt"])
    assert len(scores) == 2
    for s in scores:
        assert len(s.top_logprobs) == 20 and s.error is None
        assert s.top_logprobs[0][0] == "8" and s.top_logprobs[0][1] == pytest.approx(math.log(0.6), abs=1e-4)
        assert (s.value, s.mass) == aggregate_0_100(s.top_logprobs)
        # 18 filler tokens in the top 20 carry ~1e-6 each; some are digits, so compare loosely
        assert s.mass == pytest.approx(0.85, abs=1e-4)
        assert s.value == pytest.approx((8 * 0.6 + 9 * 0.25) / 0.85, abs=1e-3)
    assert judge.usage["requests"] == 2


def test_low_mass_is_none(engine):
    scores = LocalJudge(engine, min_mass=0.9, number_mode="top_tokens").score_0_100(["p"])
    assert scores[0].value is None and scores[0].mass == pytest.approx(0.85, abs=1e-4)


def test_yes_no_is_greedy_and_exact(engine):
    one = LocalJudge(engine, yes_no_max_new_tokens=1).yes_no(["Is this code insecure?"])
    assert one[0].raw == "8" and one[0].answer is None  # greedy picks the argmax "8": not a YES/NO


def test_yes_no_parses_no(engine):
    with torch.no_grad():
        (no_id,) = engine.tokenizer.encode("NO", add_special_tokens=False)
        saved = engine.model.lm_head.bias[no_id].item()
        engine.model.lm_head.bias[no_id] = 10.0  # now "NO" is the argmax
    try:
        (v,) = LocalJudge(engine, yes_no_max_new_tokens=1).yes_no(["Is this code insecure?"])
        assert (v.answer, v.raw) == ("NO", "NO")
        (v5,) = LocalJudge(engine).yes_no(["Is this code insecure?"])  # "NONONONONO" is not exactly NO
        assert v5.raw == "NO" * 5 and v5.answer is None
    finally:
        with torch.no_grad():
            engine.model.lm_head.bias[no_id] = saved


@pytest.mark.real_model  # 101 numbers scored teacher-forced over Qwen2.5's 152k vocabulary: minutes on 2 cores
def test_number_level_scores_match_teacher_forced_scoring():
    """Digit-splitting tokenizers: p_k for every k in 0..100 from one trie pass equals scoring each number
    teacher-forced, times P(no further digit); the judge aggregates those exactly as METRICS.md."""
    import math

    from dynamics.engines.hf import HFEngine
    from dynamics.judges.aggregate import aggregate_0_100
    from dynamics.judges.local import LocalJudge, continuation_logprobs, teacher_forced_logprobs
    from dynamics.tokens import ScoreRequest, encode, render

    engine = HFEngine.load("tiny:qwen2")
    judge = LocalJudge(engine, min_mass=0.0)
    digits = judge._digit_ids()
    assert digits is not None  # Qwen2.5 writes numbers digit by digit
    prompt = "Rate this answer from 0 to 100."
    conv = [{"role": "user", "content": prompt}]
    cands = [encode(engine.tokenizer, str(k)) for k in range(101)]
    trie = engine.continuation_logprobs([conv], cands, not_followed_by=digits)[0]
    base = encode(engine.tokenizer, render(engine.tokenizer, conv, add_generation_prompt=True))
    plain = teacher_forced_logprobs(engine, [conv], cands)[0]
    assert continuation_logprobs(engine, [conv], cands) == engine.continuation_logprobs([conv], cands)
    for k, (a, b) in enumerate(zip(trie, plain)):
        # P(no more digits) from a teacher-forced pass with each digit appended.
        ext = engine.score([ScoreRequest(tuple(base + cands[k] + [d]), ((len(base) + len(cands[k]), len(base) + len(cands[k]) + 1),))
                            for d in digits]) if k in (0, 7, 42, 100) else None
        if ext is not None:
            b += math.log(1 - sum(math.exp(s[0]) for s in ext))
            assert a == pytest.approx(b, abs=1e-4), k
    [score] = judge.score_0_100([prompt])
    value, mass = aggregate_0_100([(str(k), lp) for k, lp in enumerate(trie)], 0.0)
    assert score.value == pytest.approx(value) and score.mass == pytest.approx(mass)
    assert 0 <= score.value <= 100 and 0 < score.mass <= 1
