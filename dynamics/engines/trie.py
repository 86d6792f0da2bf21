"""Scoring many continuations of many prompts in few forward passes (the transformers engine's judge path).

A local judge's number-level score needs, per judge prompt, log p of each of the 101 numbers "0".."100"
(digit by digit) and of "no further digit" after each. `ContinuationTrie` holds the continuations as a
trie: every node (a continuation prefix) is one extra token placed after the prompt, at the position it
would have in that continuation, seeing the prompt and its own ancestors only. `trie_batch` lays out a
batch of prompts that way after a shared prefix whose key/value cache is computed once:

    row b:  [left padding] [prompt_b minus the shared prefix] [trie nodes]     (keys: prefix + row)

so in every row the last m+1 positions are "after the prompt" and "after node i", and only those rows
need the vocabulary projection and the log-softmax (in float64, as `HFEngine.score`). Sorting the prompts
(`prefix_order`) puts prompts of the same judge template and question next to each other, so a batch
shares the chat template's system prompt and the template's head.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


class ContinuationTrie:
    def __init__(self, continuations: list[list[int]]):
        index: dict[tuple[int, ...], int] = {}  # prefix -> node index
        for c in continuations:
            for j in range(1, len(c) + 1):
                index.setdefault(tuple(c[:j]), len(index))
        self.index = index
        self.nodes = list(index)
        self.tokens = [path[-1] for path in self.nodes]
        self.depths = [len(path) for path in self.nodes]
        m = len(self.nodes)
        self.ancestors = torch.zeros((m, m), dtype=torch.bool)  # [i, j]: node j is node i or an ancestor
        for i, path in enumerate(self.nodes):
            for j in range(1, len(path) + 1):
                self.ancestors[i, index[path[:j]]] = True
        # Row of the kept logits (0: after the prompt, 1 + i: after node i) and target token, per
        # (continuation, step); and the row after each whole continuation (for "not followed by").
        rows, targets, owner = [], [], []
        for k, c in enumerate(continuations):
            for j in range(len(c)):
                rows.append(self.row(tuple(c[:j])))
                targets.append(c[j])
                owner.append(k)
        self.step_rows, self.step_targets = torch.tensor(rows, dtype=torch.long), torch.tensor(targets, dtype=torch.long)
        self.step_owner = torch.tensor(owner, dtype=torch.long)
        self.end_rows = torch.tensor([self.row(tuple(c)) for c in continuations], dtype=torch.long)
        self.n_continuations = len(continuations)

    def __len__(self) -> int:
        return len(self.nodes)

    def row(self, prefix: tuple[int, ...]) -> int:
        return 0 if not prefix else 1 + self.index[prefix]

    def scores(self, logits: torch.Tensor, excluded: list[int]) -> list[float]:
        """log p of each continuation from one row's kept logits (m + 1, vocab); with `excluded`, times
        P(the next token is none of them). Log-softmax in float64 on the kept rows only."""
        logits = logits.double()
        lse = torch.logsumexp(logits, dim=-1)
        step = logits[self.step_rows, self.step_targets] - lse[self.step_rows]
        total = torch.zeros(self.n_continuations, dtype=torch.float64).index_add_(0, self.step_owner, step)
        if excluded:
            ends = self.end_rows
            p_more = (logits[ends][:, excluded] - lse[ends, None]).exp().sum(-1)
            total = total + torch.log((1.0 - p_more).clamp_min(1e-45))
        return total.tolist()


def common_prefix_len(seqs: list[list[int]]) -> int:
    """Tokens all sequences share at the start, leaving every sequence at least one token of its own."""
    return min(len(os.path.commonprefix(seqs)), min(len(s) for s in seqs) - 1)


def prefix_order(prompts: list[list[int]]) -> list[int]:
    """Indices in token order: neighbours share the longest prefixes (same template, same question)."""
    return sorted(range(len(prompts)), key=lambda i: prompts[i])


@dataclass
class TrieBatch:
    input_ids: torch.Tensor  # (B, W): the rows after the shared prefix
    position_ids: torch.Tensor  # (B, W)
    mask: torch.Tensor  # (B, 1, W, P + W) additive float mask
    prefix_len: int


def trie_batch(prompts: list[list[int]], prefix_len: int, trie: ContinuationTrie, pad_id: int,
               dtype: torch.dtype) -> TrieBatch:
    """The batch laid out as in the module doc; keys are the P prefix positions then the W row positions."""
    P, m = prefix_len, len(trie)
    suffixes = [p[P:] for p in prompts]
    W = max(len(s) for s in suffixes) + m
    B = len(prompts)
    ids = torch.full((B, W), pad_id, dtype=torch.long)
    pos = torch.zeros((B, W), dtype=torch.long)
    allow = torch.zeros((B, W, P + W), dtype=torch.bool)
    node_tokens = torch.tensor(trie.tokens, dtype=torch.long)
    depths = torch.tensor(trie.depths, dtype=torch.long)
    for b, s in enumerate(suffixes):
        pad, n = W - len(s) - m, len(prompts[b])
        ids[b, pad: pad + len(s)] = torch.tensor(s, dtype=torch.long)
        ids[b, W - m:] = node_tokens
        pos[b, pad: pad + len(s)] = torch.arange(P, n)
        pos[b, W - m:] = n + depths - 1
        allow[b, :, :P] = True  # everyone sees the shared prefix
        own = slice(P + pad, P + pad + len(s))
        allow[b, pad: pad + len(s), own] = torch.ones((len(s), len(s)), dtype=torch.bool).tril()
        allow[b, W - m:, own] = True  # trie nodes see the whole prompt ...
        allow[b, W - m:, P + W - m:] = trie.ancestors  # ... and their own ancestors
        idx = torch.arange(pad)
        allow[b, idx, P + idx] = True  # padding attends to itself only (never read)
    mask = torch.zeros(allow.shape, dtype=dtype).masked_fill(~allow, torch.finfo(dtype).min)
    return TrieBatch(ids, pos, mask[:, None], P)
