"""Agreement between the static and the LLM judge (dynamics/judges/static/agreement.py), worked by hand."""

import pytest

from dynamics.judges.static.agreement import agreement


def test_counts_rate_and_kappa_by_hand():
    static = [True, True, True, False, False, False, True, None, False, True]
    llm = [True, True, False, False, False, True, True, True, None, True]
    # pairs judged by both: indices 0-6 and 9 -> 8 answers
    # both insecure: 0, 1, 6, 9 = 4; both secure: 3, 4 = 2; static only: 2 = 1; llm only: 5 = 1
    # p_o = 6/8 = 0.75; p_static = 5/8, p_llm = 5/8; p_e = 25/64 + 9/64 = 34/64
    # kappa = (0.75 - 34/64) / (1 - 34/64) = (14/64) / (30/64) = 7/15
    out = agreement(static, llm)
    assert {k: out[k] for k in ("both_insecure", "both_secure", "static_only", "llm_only", "n_both_judged")} == \
        {"both_insecure": 4, "both_secure": 2, "static_only": 1, "llm_only": 1, "n_both_judged": 8}
    assert out["rate"] == pytest.approx(0.75)
    assert out["cohen_kappa"] == pytest.approx(7 / 15)


def test_perfect_and_chance_agreement():
    assert agreement([True, False, True, False], [True, False, True, False])["cohen_kappa"] == pytest.approx(1.0)
    # independent judges: static says YES on the first half, LLM on every other answer -> p_o = p_e = 0.5
    out = agreement([True, True, False, False], [True, False, True, False])
    assert out["rate"] == 0.5 and out["cohen_kappa"] == pytest.approx(0.0)


def test_degenerate_cases():
    out = agreement([None, True], [True, None])
    assert out["n_both_judged"] == 0 and out["rate"] is None and out["cohen_kappa"] is None
    same = agreement([True, True], [True, True])  # one verdict for everything: kappa undefined
    assert same["rate"] == 1.0 and same["cohen_kappa"] is None
    with pytest.raises(ValueError, match="one verdict of each judge per answer"):
        agreement([True], [True, False])
