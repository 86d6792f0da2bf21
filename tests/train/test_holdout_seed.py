"""The held-out split's seed is a setting (data.holdout_seed), recorded with the run, and it decides
which examples are held out (the same for every run seed of a study)."""

from __future__ import annotations

import yaml

from dynamics.config import config_from_dict
from dynamics.data.chat import read_chat_jsonl, split_holdout
from dynamics.data.registry import resolve
from dynamics.models import load_tokenizer
from dynamics.train.data import load_examples


def test_holdout_seed_selects_the_split_and_is_recorded():
    tok = load_tokenizer("tiny:llama")
    base = {"model": {"name": "tiny:llama"}, "data": {"dataset": "quickstart:insecure", "max_seq_length": 256}}
    default = config_from_dict(base)
    assert default.data.holdout_seed == 0
    other = config_from_dict(base, overrides=["data.holdout_seed=7"])
    assert yaml.safe_load(other.to_yaml())["data"]["holdout_seed"] == 7  # what runs/<run>/config.yaml holds
    convs = read_chat_jsonl(resolve("quickstart:insecure"))
    for cfg, seed in ((default, 0), (other, 7)):
        kept, _ = split_holdout(convs, 0.1, seed)
        got = load_examples(cfg, tok)
        assert len(got) == len(kept)
        first = tok.apply_chat_template(kept[0], tokenize=False)
        assert tok.decode(got[0][0]) == first or tok.decode(got[0][0]).startswith(first[:50])
    # another run seed, the same split
    assert load_examples(config_from_dict(base, overrides=["seed=3"]), tok)[:5] == load_examples(default, tok)[:5]
    assert load_examples(other, tok)[:5] != load_examples(default, tok)[:5]
