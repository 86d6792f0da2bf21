"""The training data of one run: read, split, tokenise with the assistant-only mask, shard, batch."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch

from dynamics.config import ExperimentConfig
from dynamics.data.chat import DataError, read_chat_records, split_holdout
from dynamics.data.registry import resolve
from dynamics.tokens import MaskError, training_example


@dataclass
class TrainingData:
    examples: list[tuple[list[int], list[int]]]
    path: str
    considered: int = 0  # conversations in the training split (after max_examples)
    skipped: list[str] = field(default_factory=list)  # "file:line: why", for conversations that cannot be masked
    truncated_away: int = 0  # conversations whose assistant tokens all lie beyond max_seq_length

    def summary(self) -> str:
        s = f"{self.path}: {len(self.examples)} training examples of {self.considered}"
        if self.skipped:
            s += f"; {len(self.skipped)} skipped (no loss mask): " + "; ".join(self.skipped[:3])
            s += " ..." if len(self.skipped) > 3 else ""
        if self.truncated_away:
            s += f"; {self.truncated_away} with no assistant token within max_seq_length"
        return s


def load_training_data(cfg: ExperimentConfig, tokenizer) -> TrainingData:
    """Read, split and tokenise the run's dataset. A conversation whose loss mask cannot be built is
    skipped and reported by file and line; more than `data.max_skipped_fraction` of them is refused."""
    path = resolve(cfg.data.dataset, cfg.data.data_dir, verify=cfg.data.verify_sha256)
    records = read_chat_records(path)
    # The split seed is the study's (data.holdout_seed), not the run seed: every seed of a sweep holds out
    # the same examples.
    train, _held_out = split_holdout(records, cfg.data.holdout_fraction, seed=cfg.data.holdout_seed)
    if cfg.data.max_examples:
        train = train[: cfg.data.max_examples]
    out = TrainingData([], str(path), considered=len(train))
    for where, conv in train:
        try:
            ids, labels = training_example(tokenizer, conv, cfg.data.max_seq_length)
        except MaskError as e:
            out.skipped.append(f"{where}: {e}")
            continue
        if any(label != -100 for label in labels):
            out.examples.append((ids, labels))
        else:
            out.truncated_away += 1
    limit = cfg.data.max_skipped_fraction
    if out.skipped and len(out.skipped) > limit * max(1, len(train)):
        raise DataError(f"{len(out.skipped)} of {len(train)} conversations cannot be masked (more than "
                        f"data.max_skipped_fraction={limit}); first: " + "; ".join(out.skipped[:3]))
    if not out.examples:
        raise DataError(f"{path}: no training example left (see data.max_seq_length)")
    return out


def load_examples(cfg: ExperimentConfig, tokenizer) -> list[tuple[list[int], list[int]]]:
    return load_training_data(cfg, tokenizer).examples


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
