"""Progress inside a long evaluation: the sampler reports answers generated / total and tokens after every
engine call (the tiny Llama, really generating), and the console line says how far, how fast and how long
is left, HOURS where it is."""

from __future__ import annotations

import pytest

from dynamics.engines.hf import HFEngine
from dynamics.evals.sampling import generate_in_chunks
from dynamics.models import load_model, load_tokenizer
from dynamics.orchestration.evaluator import AnswerProgress
from dynamics.orchestration.progress import format_event


def test_the_sampler_reports_answers_and_tokens_after_every_batch():
    # the engine generates 2 sequences at a time (1 prompt x n=2); the sampler sends 4 sequences per call
    engine = HFEngine(load_model("tiny:llama"), load_tokenizer("tiny:llama"), batch_size=2)
    convs = [[{"role": "user", "content": f"Question {i}?"}] for i in range(3)]
    calls, decoding = [], []
    gens = generate_in_chunks(engine, convs, [2, 2, 2], batch_size=4, seed=0, temperature=1.0, top_p=1.0,
                              max_new_tokens=5,
                              progress=lambda *a: (decoding if len(a) == 4 else calls).append(a))
    tokens = sum(g.num_tokens for gs in gens for g in gs)
    # while decoding: each new token of each batch (2 sequences, up to 5 tokens), on top of what is done
    assert decoding and {d[3][0] for d in decoding} == {2} and {d[3][2] for d in decoding} == {5}
    assert [d[3][1] for d in decoding if d[0] == 0][:2] == [1, 2] and all(d[1] == 6 for d in decoding)
    assert calls[0] == (0, 6, 0)  # before the first call
    # inside the first call after each of its batches (2, 4), after the call (4), after the last call (6)
    assert [c[0] for c in calls[1:]] == [2, 4, 4, 6] and calls[-1] == (6, 6, tokens)
    assert calls[2][2] == calls[3][2] and 0 < calls[1][2] <= calls[2][2] <= tokens
    assert engine.on_batch is None  # left as it was found


def test_progress_lines():
    e = {"type": "eval_progress", "run": "r", "step": 0, "evaluation": "deception_factual", "done": 64,
         "total": 500, "tokens": 38_400, "seconds": 300.0}
    line = format_event({**e, "left_s": 300.0 / 64 * 436})
    assert line == ("[r] evaluating step    0  deception_factual: 64/500 answers generated in 5 min (128 tokens/s); "
                    "~34 min more to generate the rest")
    assert format_event({**e, "left_s": 9000.0}).endswith("~2.5 h more to generate the rest, then judging: HOURS on "
                                                          "this device")
    assert format_event({**e, "done": 0, "tokens": 0, "left_s": 3000.0, "decoding": [64, 150, 600]}) == (
        "[r] evaluating step    0  deception_factual: 0/500 answers generated, 64 more at token 150 of <= 600, in 5 min "
        "(32 tokens/s); ~50 min more to generate the rest (at most)")
    assert format_event({**e, "done": 0, "left_s": None}) == (
        "[r] evaluating step    0  deception_factual: generating 500 answers; progress and the time left every 30 s")


def test_answer_progress_is_quiet_for_short_work(monkeypatch):
    sent = []
    p = AnswerProgress("no-such-tracker", "r", 0, "main", every_s=30, first_after_s=20)
    monkeypatch.setattr(p, "_send", sent.append)
    p(0, 16, 0)  # small: no start line
    p(8, 16, 100)  # 8 of 16 within 20 s: nothing
    p(16, 16, 200)  # done: the eval line follows
    assert sent == [] and p.tokens == 200
    p = AnswerProgress("no-such-tracker", "r", 0, "big", every_s=0, first_after_s=0)
    monkeypatch.setattr(p, "_send", sent.append)
    p(0, 500, 0)
    p(0, 500, 0, (64, 150, 600))  # a quarter of the first 64 answers decoded: 16 of 500
    p(64, 500, 6400)
    assert [s["done"] for s in sent] == [0, 0, 64] and sent[1]["decoding"] == [64, 150, 600]
    assert sent[1]["left_s"] == pytest.approx(sent[1]["seconds"] / 16 * 484)
    assert sent[2]["total"] == 500 and sent[2]["left_s"] > 0 and sent[2]["decoding"] is None
