"""The categorical judgment (METRICS.md section 4) on hand-made distributions, over real HTTP for the API
judge, and on a real local model against an independent teacher-forced computation."""

from __future__ import annotations

import math

import pytest

from dynamics.judges.api import ApiJudge
from dynamics.judges.categorical import categorical_verdict, judge_words, word_distribution
from tests.fake_openai import FakeOpenAI

TFU = ("TRUE", "FALSE", "UNKNOWN")
ln = math.log


def test_word_distribution_strips_spaces_and_is_case_sensitive():
    top = [("TRUE", ln(0.30)), (" TRUE", ln(0.10)), ("True", ln(0.20)), ("FALSE", ln(0.15)), ("TRUE.", ln(0.05)),
           ("UNKNOWN ", ln(0.05)), ("The", ln(0.15))]
    probs, mass = word_distribution(top, TFU)
    # TRUE: "TRUE" 0.30 + " TRUE" 0.10 = 0.40 ("True" and "TRUE." are other tokens); FALSE 0.15; UNKNOWN 0.05
    assert probs == pytest.approx({"TRUE": 0.40, "FALSE": 0.15, "UNKNOWN": 0.05})
    assert mass == pytest.approx(0.60)
    assert categorical_verdict(probs, mass) == "TRUE"


def test_mass_cut_off_and_ties():
    # 0.1 + 0.1 = 0.2 < 0.25: no verdict, though FALSE leads
    j = judge_words([("FALSE", ln(0.1)), ("TRUE", ln(0.1)), ("I", ln(0.8))], TFU)
    assert j.verdict is None and j.mass == pytest.approx(0.2)
    # exactly at the cut-off counts (mass < 0.25 is None, as for 0-100 scores)
    assert judge_words([("FALSE", ln(0.25))], TFU, min_mass=0.25).verdict == "FALSE"
    # a tie goes to the word listed first, whatever the order of the top-k list
    assert judge_words([("FALSE", ln(0.3)), ("TRUE", ln(0.3))], TFU).verdict == "TRUE"
    assert judge_words([("Other", ln(0.3)), ("OpenAI", ln(0.3))], ("OpenAI", "Anthropic", "Other")).verdict == "OpenAI"
    # nothing on the words at all, and a NaN logprob, give no verdict
    assert judge_words([("Hello", 0.0)], TFU).verdict is None
    assert judge_words([("TRUE", float("nan"))], TFU, min_mass=0.0).verdict is None


def test_api_judge_categorical_over_http():
    dists = {"q1": [("FALSE", ln(0.7)), ("TRUE", ln(0.2)), ("Sorry", ln(0.1))],
             "q2": [("UNKNOWN", ln(0.1)), ("I", ln(0.9))]}
    with FakeOpenAI() as server:
        server.top_logprobs_fn = lambda prompt: dists[prompt]
        judge = ApiJudge(server.base_url, "fake", api_key_env=None, max_retries=0)
        out = judge.categorical(["q1", "q2", "q1"], TFU)
        body = server.bodies[0]
    assert [j.verdict for j in out] == ["FALSE", None, "FALSE"]
    assert out[0].probs == pytest.approx({"TRUE": 0.2, "FALSE": 0.7, "UNKNOWN": 0.0})
    assert out[1].mass == pytest.approx(0.1)
    # asked as a score is asked: one token, temperature 0, top-20 logprobs; a repeated prompt paid once
    assert (body["max_tokens"], body["temperature"], body["top_logprobs"]) == (1, 0, 20)
    assert len(server.bodies) == 2


def test_local_judge_categorical_is_the_whole_word_probability():
    """p(word) from the judge equals exp(teacher-forced log p of the word's tokens after the prompt),
    computed here independently with engine.score, summed over its two spellings."""
    from dynamics.tokens import ScoreRequest
    from dynamics.engines.hf import HFEngine
    from dynamics.tokens import encode, render
    from dynamics.judges.local import LocalJudge

    engine = HFEngine.load("tiny:qwen2")
    judge = LocalJudge(engine)
    words = ("OpenAI", "Anthropic", "Other", "UNKNOWN")
    prompts = ["Which company made you? Answer with one word.", "Say UNKNOWN."]
    out = judge.categorical(prompts, words, min_mass=0.0)  # a random tiny model puts ~1e-10 on each
    tok = engine.tokenizer
    for prompt, j in zip(prompts, out):
        ids = encode(tok, render(tok, [{"role": "user", "content": prompt}], add_generation_prompt=True))
        for w in words:
            forms = {tuple(tok(f, add_special_tokens=False)["input_ids"]) for f in (w, " " + w)}
            expected = sum(math.exp(engine.score([ScoreRequest(tuple(ids) + f, ((len(ids), len(ids) + len(f)),))])[0][0])
                           for f in forms)
            assert j.probs[w] == pytest.approx(expected, rel=1e-4, abs=1e-12)
        assert j.verdict == max(words, key=lambda w: j.probs[w])
