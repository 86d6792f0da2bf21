"""A judge that is a local model behind any `Engine` (transformers on CPU, vLLM on a GPU).

    judge = LocalJudge(HFEngine.load("Qwen/Qwen2.5-7B-Instruct"))
    judge.score_0_100([prompt, ...])     # same recipe as the API judge, METRICS.md section 2
    judge.yes_no([prompt, ...])          # greedy, then exactly YES / NO, METRICS.md section 1

Each prompt is one user message, rendered with the model's chat template (so a template's default system
prompt, e.g. Qwen's, is present, unlike the API judge). `score_0_100` takes the engine's top-20 next-token
log-probabilities and aggregates them exactly as the API judge does (`aggregate_0_100`).

Caveat, and why a local score is not the paper's number: GPT-4o's tokenizer has single tokens for
0..100 ("85", "100"), so its top-20 first tokens are whole numbers. Most open tokenizers (Llama-3's
aside) split numbers into single digits (SmolLM2, Qwen2.5), so the first token of "85" is "8": the
aggregate is then a mean over *first digits* (0..9), "100" cannot appear, and the number mass may sit on
a leading space token and fall under the 0.25 cut-off. The recipe is still the METRICS.md one; judge
a local judge by its agreement with the API judge, not by its absolute values.
"""

from __future__ import annotations

import threading

from dynamics.engines.base import Engine, SamplingParams
from dynamics.judges.aggregate import MIN_NUMBER_MASS, aggregate_0_100, parse_yes_no
from dynamics.judges.base import Judge, JudgeScore, YesNo

TOP_K = 20


class LocalJudge(Judge):
    def __init__(self, engine: Engine, name: str = "local", *, min_mass: float = MIN_NUMBER_MASS,
                 yes_no_max_new_tokens: int = 5):  # fmt: skip
        if yes_no_max_new_tokens < 1:
            raise ValueError(f"yes_no_max_new_tokens must be >= 1, got {yes_no_max_new_tokens}")
        self.engine = engine
        self.name = f"local:{name}"
        self.min_mass = min_mass
        self.yes_no_max_new_tokens = yes_no_max_new_tokens
        self._lock = threading.Lock()
        self._usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "cache_hits": 0}

    def __repr__(self) -> str:
        return f"LocalJudge(name={self.name!r}, engine={type(self.engine).__name__})"

    @property
    def usage(self) -> dict[str, int]:
        with self._lock:
            return dict(self._usage)

    def score_0_100(self, prompts: list[str]) -> list[JudgeScore]:
        if not prompts:
            return []
        dists = self.engine.next_token_logprobs([_user(p) for p in prompts], top_k=TOP_K)
        _check_count(self.engine, "distributions", dists, prompts)
        out = []
        for dist in dists:
            top = [(str(t), float(lp)) for t, lp in dist.top]
            value, mass = aggregate_0_100(top, self.min_mass)
            out.append(JudgeScore(value=value, mass=mass, top_logprobs=top))
        self._count(len(prompts), completion_tokens=len(prompts))
        return out

    def yes_no(self, prompts: list[str]) -> list[YesNo]:
        if not prompts:
            return []
        params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=self.yes_no_max_new_tokens, n=1, seed=0)
        generations = self.engine.generate([_user(p) for p in prompts], params)
        _check_count(self.engine, "answers", generations, prompts)
        out = []
        for gens in generations:
            raw = gens[0].text if gens else ""
            out.append(YesNo(answer=parse_yes_no(raw), raw=raw))
        self._count(len(prompts), completion_tokens=sum(g[0].num_tokens for g in generations if g))
        return out

    def _count(self, requests: int, completion_tokens: int) -> None:
        with self._lock:
            self._usage["requests"] += requests
            self._usage["completion_tokens"] += completion_tokens

    def close(self) -> None:
        """The engine belongs to whoever made it; closing the judge leaves it alone."""


def _check_count(engine: Engine, what: str, got: list, prompts: list[str]) -> None:
    if len(got) != len(prompts):
        raise RuntimeError(f"{type(engine).__name__} returned {len(got)} {what} for {len(prompts)} prompts")


def _user(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]
