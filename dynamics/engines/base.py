"""The contract every generation/scoring back end shares (transformers here, vLLM on GPUs).

Scoring is teacher-forced: a `ScoreRequest` is a token sequence plus the half-open token spans whose
log-probabilities are summed (the boundary between context and continuation is decided once, in
`dynamics.tokens`, so every back end scores exactly the same tokens). Generation takes chat
conversations, renders them with the model's chat template and returns the sampled text.

An engine holds one base model for its whole life and switches LoRA adapters per checkpoint:
`use_adapter(path)` (a PEFT adapter directory) or `use_adapter(None)` for the untouched base model.
"""

from __future__ import annotations

import abc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dynamics.tokens import ScoreRequest


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 600
    n: int = 1  # samples per conversation
    seed: int = 0


@dataclass
class Generation:
    text: str
    num_tokens: int
    finished: bool  # ended with EOS (False: cut at max_new_tokens)


@dataclass
class TokenLogprobs:
    """Next-token distribution after a prompt: top-k (token text, logprob), like an API's top_logprobs."""

    top: list[tuple[str, float]] = field(default_factory=list)


class Engine(abc.ABC):
    """One base model, many adapters."""

    tokenizer = None  # a transformers tokenizer (chat template included)
    # Called by an engine that splits a `generate` call into batches, after each, with (sequences, tokens)
    # generated in that batch: progress inside one long call (dynamics.evals.sampling sets it).
    on_batch = None
    # Called while an engine decodes, after each new token, with (sequences decoding, tokens decoded so far
    # in this batch, max_new_tokens): progress inside one batch of long answers.
    on_decode = None

    @abc.abstractmethod
    def use_adapter(self, adapter_dir: str | Path | None) -> None:
        """Make `adapter_dir` (a PEFT adapter) active; None means the untouched base model."""

    @abc.abstractmethod
    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        """For each request, the summed log-probability of each span (in order)."""

    @abc.abstractmethod
    def generate(self, conversations: list[list[dict]], params: SamplingParams) -> list[list[Generation]]:
        """For each conversation (chat messages), `params.n` sampled continuations of the assistant turn."""

    def next_token_logprobs(self, conversations: list[list[dict]], top_k: int = 20) -> list[TokenLogprobs]:
        """Top-k next-token log-probabilities after each rendered conversation (used by local judges)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose next-token distributions")

    def continuation_logprobs(self, conversations: list[list[dict]], continuations: list[list[int]],
                              not_followed_by: list[int] = ()) -> list[list[float]]:
        """For each conversation (rendered with the generation prompt), the log-probability of each
        continuation (token ids) as the start of the assistant's reply; with `not_followed_by`, times the
        probability that the next token is none of those (used by local judges). Optional: a back end
        without it is scored through `score` by the judge (`dynamics.judges.local`)."""
        raise NotImplementedError(f"{type(self).__name__} does not score continuations in one pass")

    @contextmanager
    def without_adapter(self):
        """Within this block the engine is the untouched base model (e.g. to judge with it)."""
        saved = self._active_adapter_state()
        self._set_active_adapter_state(None)
        try:
            yield self
        finally:
            self._set_active_adapter_state(saved)

    def _active_adapter_state(self):
        return getattr(self, "_adapter", None)

    def _set_active_adapter_state(self, state) -> None:
        self._adapter = state

    def close(self) -> None:  # release device memory
        pass


class BaseModelView(Engine):
    """The same engine, always without adapter: a local "self" judge scores with the base model, not with
    the checkpoint it is judging."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.tokenizer = engine.tokenizer

    def use_adapter(self, adapter_dir) -> None:
        raise RuntimeError("a base-model view never loads adapters")

    def score(self, requests):
        with self.engine.without_adapter():
            return self.engine.score(requests)

    def generate(self, conversations, params):
        with self.engine.without_adapter():
            return self.engine.generate(conversations, params)

    def next_token_logprobs(self, conversations, top_k: int = 20):
        with self.engine.without_adapter():
            return self.engine.next_token_logprobs(conversations, top_k)

    def continuation_logprobs(self, conversations, continuations, not_followed_by=()):
        with self.engine.without_adapter():
            return self.engine.continuation_logprobs(conversations, continuations, not_followed_by)
