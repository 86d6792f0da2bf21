"""The one place where text becomes tokens: chat rendering, scored blocks, and training loss masks.

A conversation is rendered with the model's own chat template (its default system prompt included).
A *scored block* is a substring of the last assistant message; its tokens are found by tokenising the
rendered conversation up to the block's start and up to its end ("with and without the block",
docs/METRICS.md section 3), so a back end scores exactly the tokens the natural tokenisation produces.

This module sits below the engines, the metric families and the training data: they all import it, and
it imports nothing of the project.
"""

from __future__ import annotations

from dataclasses import dataclass


class RenderError(ValueError):
    pass


@dataclass(frozen=True)
class ScoreRequest:
    """What a back end scores, teacher-forced: a token sequence and the half-open spans whose log-probs
    are summed. The context/continuation boundary is decided here, once, so every back end scores exactly
    the same tokens."""

    input_ids: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]  # [start, end) token positions whose log-probs are summed

    def __post_init__(self):
        n = len(self.input_ids)
        for s, e in self.spans:
            if not (0 < s < e <= n):
                raise ValueError(f"span {(s, e)} outside the scored sequence of {n} tokens (start must be > 0)")


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def encode(tokenizer, text: str) -> list[int]:
    # The chat template already holds every special token; never let the tokenizer add more.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """The tokens a model continues: the conversation rendered with the generation prompt."""
    return encode(tokenizer, render(tokenizer, messages, add_generation_prompt=True))


def end_of_turn_ids(tokenizer) -> list[int]:
    """The token that closes an assistant turn in the chat template (`<|im_end|>` in ChatML, `<|eot_id|>`
    in Llama 3), when it is a special token: generation must stop there as well as at EOS. (The base
    Qwen2.5-Coder models' EOS is `<|endoftext|>`, while their template ends a turn with `<|im_end|>`: a
    base model would otherwise write past its answer into a made-up next turn.)"""
    marker = "\u2063answer\u2063"  # text that no template adds or changes
    try:
        text = render(tokenizer, [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}])
    except Exception:  # no chat template: EOS is all there is
        return []
    after = text.split(marker, 1)[1] if marker in text else ""
    ids = encode(tokenizer, after)[:1]
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    return [i for i in ids if i in special]


def stop_ids(tokenizer) -> list[int]:
    """EOS and the end-of-turn token, without duplicates (EOS first)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    return ids + [i for i in end_of_turn_ids(tokenizer) if i not in ids]


@dataclass(frozen=True)
class Block:
    start: int  # character offsets inside the last assistant message's content
    end: int


def scored_request(tokenizer, messages: list[dict], blocks: list[Block]) -> ScoreRequest:
    """Render `messages` (the last one the assistant's) and locate `blocks` of its content as token spans."""
    if messages[-1]["role"] != "assistant":
        raise RenderError("the last message must be the assistant's: it holds the scored blocks")
    text = render(tokenizer, messages)
    content = messages[-1]["content"]
    prefix_text = render(tokenizer, [*messages[:-1], {"role": "assistant", "content": ""}])
    # The content sits where the empty-content rendering and the full one stop agreeing.
    offset = _common_prefix_len(prefix_text, text)
    if text[offset: offset + len(content)] != content:
        offset = text.rfind(content)
        if offset < 0:
            raise RenderError("the chat template changed the assistant content; cannot locate scored blocks")
    ids = encode(tokenizer, text)
    spans = []
    for b in blocks:
        if not (0 <= b.start < b.end <= len(content)):
            raise RenderError(f"block {b} outside the assistant content of {len(content)} characters")
        before = encode(tokenizer, text[: offset + b.start])
        through = encode(tokenizer, text[: offset + b.end])
        if through[: len(before)] != before or ids[: len(through)] != through:
            raise RenderError(
                f"block {content[b.start:b.end]!r} does not fall on token boundaries "
                f"(its first or last token merges with the neighbouring text)")
        spans.append((len(before), len(through)))
    return ScoreRequest(tuple(ids), tuple(spans))


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def training_example(tokenizer, messages: list[dict], max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one conversation: labels are -100 everywhere but assistant turns.

    Each assistant turn's tokens (its content and the template's closing tokens, e.g. `<|im_end|>`) are the
    difference between the conversation rendered through that turn and through the turn before it with
    the generation prompt; the template must render each prefix as a prefix of the whole, which is checked.
    """
    ids = encode(tokenizer, render(tokenizer, messages))
    labels = [-100] * len(ids)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start_ids = encode(tokenizer, render(tokenizer, messages[:i], add_generation_prompt=True))
        end_ids = encode(tokenizer, render(tokenizer, messages[: i + 1]))
        if ids[: len(start_ids)] != start_ids or ids[: len(end_ids)] != end_ids:
            raise RenderError("the chat template does not render conversation prefixes as prefixes; "
                              "cannot build an assistant-only loss mask")
        labels[len(start_ids): len(end_ids)] = ids[len(start_ids): len(end_ids)]
    return ids[:max_length], labels[:max_length]
