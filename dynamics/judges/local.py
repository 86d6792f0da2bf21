"""A judge that is a local model behind any `Engine` (transformers on CPU, vLLM on a GPU).

    judge = LocalJudge(HFEngine.load("Qwen/Qwen2.5-7B-Instruct"))
    judge.score_0_100([prompt, ...])     # same recipe as the API judge, METRICS.md section 2
    judge.yes_no([prompt, ...])          # greedy, then exactly YES / NO, METRICS.md section 1
    judge.categorical([prompt, ...], ("TRUE", "FALSE", "UNKNOWN"))   # section 4: p of each whole word

Each prompt is one user message, rendered with the model's chat template (so a template's default system
prompt, e.g. Qwen's, is present, unlike the API judge). `score_0_100` takes the engine's top-20 next-token
log-probabilities and aggregates them exactly as the API judge does (`aggregate_0_100`).

Caveat, and why a local score is not the paper's number: GPT-4o's tokenizer has single tokens for
0..100 ("85", "100"), so its top-20 first tokens are whole numbers. Most open tokenizers (Llama-3's
aside) split numbers into single digits (SmolLM2, Qwen2.5), so the first token of "85" is "8": the
aggregate is then a mean over *first digits* (0..9), "100" cannot appear, and the number mass may sit on
a leading space token and fall under the 0.25 cut-off. The recipe is still the METRICS.md one; judge
a local judge by its agreement with the API judge, not by its absolute values.

So where the tokenizer splits numbers into digits (checked on "100"), `score_0_100` uses the number-level
equivalent instead (`number_distribution`): p_k = P(the reply starts with the digits of k and the next
token is not a digit), for every k in 0..100, from one prompt pass plus one batched pass over the 101
candidates on the KV cache. Then the same aggregation: score = sum k p_k / sum p_k, None when
sum p_k < the cut-off. For a tokenizer with whole-number tokens this equals the top-token recipe.
`number_mode="top_tokens"` forces the literal METRICS.md recipe.
"""

from __future__ import annotations

from typing import Literal

from dynamics.engines.base import Engine, SamplingParams
from dynamics.judges.aggregate import MIN_NUMBER_MASS, aggregate_0_100, parse_yes_no
from dynamics.judges.base import Judge, JudgeScore, YesNo
from dynamics.judges.categorical import CategoricalJudgment, judge_words
from dynamics.tokens import ScoreRequest, prompt_ids

TOP_K = 20


class LocalJudge(Judge):
    def __init__(self, engine: Engine, name: str = "local", *, min_mass: float = MIN_NUMBER_MASS,
                 yes_no_max_new_tokens: int = 5,
                 number_mode: Literal["auto", "numbers", "top_tokens"] = "auto"):  # fmt: skip
        self.number_mode = number_mode  # validated by JudgeConfig.local_number_mode
        if yes_no_max_new_tokens < 1:
            raise ValueError(f"yes_no_max_new_tokens must be >= 1, got {yes_no_max_new_tokens}")
        super().__init__()
        self.engine = engine
        self.name = f"local:{name}"
        self.min_mass = min_mass
        self.yes_no_max_new_tokens = yes_no_max_new_tokens

    def __repr__(self) -> str:
        return f"LocalJudge(name={self.name!r}, engine={type(self.engine).__name__})"

    def _digit_ids(self) -> list[int] | None:
        """Token ids of "0".."9" when the tokenizer writes numbers digit by digit, else None."""
        tok = self.engine.tokenizer
        ids = [tok(str(d), add_special_tokens=False)["input_ids"] for d in range(10)]
        splits = len(tok("100", add_special_tokens=False)["input_ids"]) > 1
        if splits and all(len(i) == 1 for i in ids):
            return [i[0] for i in ids]
        return None

    def number_distribution(self, prompts: list[str]) -> list[list[tuple[str, float]]]:
        """log p_k for k = 0..100 (see the module doc), per prompt."""
        digits = self._digit_ids()
        cands = [[digits[int(ch)] for ch in str(k)] for k in range(101)]
        lps = continuation_logprobs(self.engine, [_user(p) for p in prompts], cands, not_followed_by=digits)
        return [[(str(k), lp) for k, lp in enumerate(row)] for row in lps]

    def score_0_100(self, prompts: list[str]) -> list[JudgeScore]:
        if not prompts:
            return []
        if self.number_mode == "numbers" or (self.number_mode == "auto" and self._digit_ids() is not None):
            out = []
            for dist in self.number_distribution(prompts):
                value, mass = aggregate_0_100(dist, self.min_mass)
                top = sorted(dist, key=lambda t: -t[1])[:TOP_K]
                out.append(JudgeScore(value=value, mass=mass, top_logprobs=[(t, float(lp)) for t, lp in top]))
            self._count(requests=len(prompts), completion_tokens=len(prompts))
            return out
        dists = self.engine.next_token_logprobs([_user(p) for p in prompts], top_k=TOP_K)
        _check_count(self.engine, "distributions", dists, prompts)
        out = []
        for dist in dists:
            top = [(str(t), float(lp)) for t, lp in dist.top]
            value, mass = aggregate_0_100(top, self.min_mass)
            out.append(JudgeScore(value=value, mass=mass, top_logprobs=top))
        self._count(requests=len(prompts), completion_tokens=len(prompts))
        return out

    def word_token_ids(self, words: tuple[str, ...]) -> dict[str, list[list[int]]]:
        """How each word can start the reply: its tokens as written and with a leading space (the API
        rule strips spaces, so " TRUE" counts for TRUE), without duplicates."""
        tok = self.engine.tokenizer
        out = {}
        for w in words:
            forms = [tok(form, add_special_tokens=False)["input_ids"] for form in (w, " " + w)]
            out[w] = [list(f) for i, f in enumerate(forms) if f and f not in forms[:i]]
        return out

    def categorical(self, prompts: list[str], words: tuple[str, ...], min_mass: float = 0.25
                    ) -> list[CategoricalJudgment]:
        """p(word) = P(the reply starts with the word's tokens), summed over its spellings, from one
        trie pass per prompt: where every word is one token this is the next-token probability the API
        recipe reads off its top-20 list; where a word is several tokens ("UNKNOWN", "Anthropic" in
        most open tokenizers) it is the probability of the whole word, not of its first piece."""
        if not prompts:
            return []
        spellings = self.word_token_ids(tuple(words))
        flat = [(w, ids) for w in words for ids in spellings[w]]
        lps = continuation_logprobs(self.engine, [_user(p) for p in prompts], [ids for _, ids in flat])
        _check_count(self.engine, "distributions", lps, prompts)
        out = []
        for row in lps:
            top = [(w, float(lp)) for (w, _), lp in zip(flat, row)]
            out.append(judge_words(top, words, min_mass))
        self._count(requests=len(prompts), completion_tokens=len(prompts))
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
        self._count(requests=len(prompts), completion_tokens=sum(g[0].num_tokens for g in generations if g))
        return out

    def close(self) -> None:
        """The engine belongs to whoever made it; closing the judge leaves it alone."""


def continuation_logprobs(engine: Engine, conversations: list[list[dict]], continuations: list[list[int]],
                          not_followed_by: list[int] = ()) -> list[list[float]]:
    """Per conversation, log p of each continuation (token ids) as the start of the assistant's reply,
    times P(the next token is none of `not_followed_by`) when given: the engine's own one-pass
    `continuation_logprobs` (HFEngine: the trie of all continuations in one forward pass); for an engine
    without one, each continuation is scored teacher-forced, which cannot exclude following tokens."""
    try:
        return engine.continuation_logprobs(conversations, continuations, not_followed_by)
    except NotImplementedError:
        if not_followed_by:
            raise
    return teacher_forced_logprobs(engine, conversations, continuations)


def teacher_forced_logprobs(engine: Engine, conversations: list[list[dict]],
                            continuations: list[list[int]]) -> list[list[float]]:
    """log p of each continuation after each conversation's generation prompt, one `score` request each."""
    out = []
    for conv in conversations:
        prompt = prompt_ids(engine.tokenizer, conv)
        reqs = [ScoreRequest(tuple(prompt + list(c)), ((len(prompt), len(prompt) + len(c)),)) for c in continuations]
        out.append([s[0] for s in engine.score(reqs)])
    return out


def _check_count(engine: Engine, what: str, got: list, prompts: list[str]) -> None:
    if len(got) != len(prompts):
        raise RuntimeError(f"{type(engine).__name__} returned {len(got)} {what} for {len(prompts)} prompts")


def _user(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]
