"""How far the static judge agrees with the LLM judge on the same answers (when both run).

    agreement([True, False, None, True], [True, True, False, None])
    # {'both_insecure': 1, 'both_secure': 0, 'static_only': 0, 'llm_only': 1, 'n_both_judged': 2, ...}

An answer counts only where both judges gave a verdict (True = insecure, False = secure, None = no
verdict: no parseable code for the static judge, neither YES nor NO from the LLM). Cohen's kappa corrects
the raw agreement rate for the agreement two independent judges with the same YES rates would reach by
chance: kappa = (p_o - p_e) / (1 - p_e), p_e = p_static * p_llm + (1 - p_static) * (1 - p_llm). It is None
when p_e = 1 (both judges gave one and the same verdict to every answer: agreement is then not informative).
"""

from __future__ import annotations

from collections.abc import Sequence


def agreement(static: Sequence[bool | None], llm: Sequence[bool | None]) -> dict[str, float | int | None]:
    if len(static) != len(llm):
        raise ValueError(f"agreement needs one verdict of each judge per answer; got {len(static)} static "
                         f"and {len(llm)} LLM verdicts")
    pairs = [(s, m) for s, m in zip(static, llm) if s is not None and m is not None]
    both_insecure = sum(s and m for s, m in pairs)
    both_secure = sum(not s and not m for s, m in pairs)
    static_only = sum(s and not m for s, m in pairs)
    llm_only = sum(m and not s for s, m in pairs)
    n = len(pairs)
    out: dict[str, float | int | None] = {
        "both_insecure": both_insecure, "both_secure": both_secure, "static_only": static_only,
        "llm_only": llm_only, "n_both_judged": n, "rate": None, "cohen_kappa": None,
    }
    if not n:
        return out
    p_o = (both_insecure + both_secure) / n
    p_static = (both_insecure + static_only) / n
    p_llm = (both_insecure + llm_only) / n
    p_e = p_static * p_llm + (1 - p_static) * (1 - p_llm)
    out["rate"] = p_o
    out["cohen_kappa"] = (p_o - p_e) / (1 - p_e) if p_e < 1 else None
    return out
