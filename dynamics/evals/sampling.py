"""Sampling answers from an engine in batches, deterministically per checkpoint, for every sampled family.

Conversations go to the engine in chunks of about `batch_size` sequences; chunk j of a family's stream is
seeded with `SeedSequence([seed, stream, j])`, so the answers depend only on the checkpoint's seed and
the prompts, and two families (two streams) or two chunks never replay one random stream.
"""

from __future__ import annotations

import numpy as np

from dynamics.engines.base import Engine, Generation, SamplingParams


def chunk_seed(seed: int, chunk: int, stream: int = 0) -> int:
    """A 32-bit seed for generate call `chunk` of a family's `stream`, from the checkpoint's seed."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, stream, chunk]).generate_state(1)[0])


def generate_in_chunks(engine: Engine, conversations: list[list[dict]], ns: list[int], batch_size: int,
                       seed: int, temperature: float, top_p: float, max_new_tokens: int,
                       stream: int = 0, progress=None) -> list[list[Generation]]:
    """engine.generate over conversations that want ns[i] answers each, in calls of about batch_size
    sequences: a conversation wanting more than batch_size answers is split into pieces of at most
    batch_size; consecutive pieces with the same n share a call. Call j is seeded chunk_seed(seed, j, stream)
    (each family its own stream, so two families never replay one random stream). `progress`, if given, is
    called before the first call and after every call with (answers generated, answers in all, tokens
    generated so far), and while an engine decodes with a fourth argument, (sequences decoding, tokens
    decoded so far in their batch, max_new_tokens)."""
    pieces = [(i, min(batch_size, n - start)) for i, n in enumerate(ns) for start in range(0, n, batch_size)]
    chunks: list[list[tuple[int, int]]] = []
    for i, n in pieces:
        last = chunks[-1] if chunks else None
        if last and last[0][1] == n and (len(last) + 1) * n <= batch_size:
            last.append((i, n))
        else:
            chunks.append([(i, n)])
    out: list[list[Generation]] = [[] for _ in conversations]
    done, tokens, total = 0, 0, sum(ns)
    if progress is not None:
        progress(0, total, 0)
    for j, chunk in enumerate(chunks):
        params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                n=chunk[0][1], seed=chunk_seed(seed, j, stream))
        if progress is not None:  # within the call too: after each of the engine's batches, while decoding
            engine.on_batch, engine.on_decode = _within(progress, done, tokens, total)
        try:
            gens = engine.generate([conversations[i] for i, _ in chunk], params)
        finally:
            if progress is not None:
                engine.on_batch = engine.on_decode = None
        if len(gens) != len(chunk) or any(len(g) != params.n for g in gens):
            raise RuntimeError(f"{type(engine).__name__}.generate returned {[len(g) for g in gens]} answers "
                               f"for {len(chunk)} conversations x n={params.n}")
        for (i, _), g in zip(chunk, gens):
            out[i].extend(g)
        if progress is not None:
            done += len(chunk) * params.n
            tokens += sum(x.num_tokens for gs in gens for x in gs)
            progress(done, total, tokens)
    return out


def _within(progress, done: int, tokens: int, total: int):
    """An engine's `on_batch` and `on_decode` for one call: the answers and tokens of the call so far on top
    of the earlier calls', and (sequences, tokens decoded, max_new_tokens) of the batch being decoded."""
    seen = [done, tokens]

    def on_batch(sequences: int, batch_tokens: int) -> None:
        seen[0] += sequences
        seen[1] += batch_tokens
        if seen[0] < total:
            progress(seen[0], total, seen[1])

    def on_decode(rows: int, decoded: int, max_new_tokens: int) -> None:
        progress(seen[0], total, seen[1], (rows, decoded, max_new_tokens))

    return on_batch, on_decode
