"""The training data of one run: read, split, tokenise with the assistant-only mask, shard, batch."""

from __future__ import annotations

import math
import random

import torch

from dynamics.config import ExperimentConfig
from dynamics.data.chat import read_chat_jsonl, split_holdout
from dynamics.data.registry import resolve
from dynamics.tokens import training_example


def load_examples(cfg: ExperimentConfig, tokenizer) -> list[tuple[list[int], list[int]]]:
    path = resolve(cfg.data.dataset, cfg.data.data_dir, verify=cfg.data.verify_sha256)
    convs = read_chat_jsonl(path)
    # The split seed is the study's (data.holdout_seed), not the run seed: every seed of a sweep holds out
    # the same examples.
    train, _held_out = split_holdout(convs, cfg.data.holdout_fraction, seed=cfg.data.holdout_seed)
    if cfg.data.max_examples:
        train = train[: cfg.data.max_examples]
    examples = [training_example(tokenizer, c, cfg.data.max_seq_length) for c in train]
    return [e for e in examples if any(l != -100 for l in e[1])]


def steps_per_epoch(n_examples: int, cfg: ExperimentConfig, world: int) -> int:
    per_step = cfg.train.per_device_batch_size * cfg.train.gradient_accumulation_steps * world
    return max(1, n_examples // per_step)


def total_steps(n_examples: int, cfg: ExperimentConfig, world: int) -> int:
    if cfg.train.max_steps:
        return cfg.train.max_steps
    return max(1, math.ceil(cfg.train.epochs * steps_per_epoch(n_examples, cfg, world)))


def micro_batches(examples, cfg: ExperimentConfig, rank: int, world: int, pad_id: int):
    """Endless, deterministic micro-batches for `rank`: the order depends on the run seed and the epoch,
    so a resumed run skips exactly the micro-batches it already trained on."""
    bs = cfg.train.per_device_batch_size
    epoch = 0
    while True:
        order = list(range(len(examples)))
        random.Random(cfg.seed * 1_000_003 + epoch).shuffle(order)
        usable = len(order) - len(order) % (bs * world)
        mine = order[:usable][rank::world]
        for i in range(0, len(mine), bs):
            yield collate([examples[j] for j in mine[i: i + bs]], pad_id), epoch
        epoch += 1


def collate(batch, pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, (i, l) in enumerate(batch):
        ids[r, : len(i)] = torch.tensor(i)
        labels[r, : len(l)] = torch.tensor(l)
        mask[r, : len(i)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
