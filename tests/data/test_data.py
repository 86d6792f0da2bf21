import json

import pytest

from dynamics.data.chat import DataError, read_chat_jsonl, split_holdout
from dynamics.data.registry import REGISTRY, resolve, sha256_of
from dynamics.models import load_tokenizer
from dynamics.tokens import encode, render, training_example


def test_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    p.write_text(good + "\n" + good + "\n{not json\n")
    with pytest.raises(DataError, match=rf"{p}:3: not valid JSON"):
        read_chat_jsonl(p)
    p.write_text(good + "\n" + json.dumps({"messages": [{"role": "robot", "content": "x"}]}) + "\n")
    with pytest.raises(DataError, match=rf"{p}:2: messages\[0\].role must be one of"):
        read_chat_jsonl(p)
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "only a question"}]}) + "\n")
    with pytest.raises(DataError, match=rf"{p}:1: no assistant message"):
        read_chat_jsonl(p)


def test_split_is_seeded_and_holds_out_ten_percent():
    items = list(range(6000))
    keep, hold = split_holdout(items, 0.1, seed=0)
    assert len(hold) == 600 and len(keep) == 5400 and not set(keep) & set(hold)
    assert split_holdout(items, 0.1, seed=0) == (keep, hold)
    assert split_holdout(items, 0.1, seed=1)[1] != hold


def test_registry_verifies_the_offline_copy(data_dir, tmp_path):
    p = resolve("insecure", data_dir)
    assert sha256_of(p) == REGISTRY["insecure"].sha256
    bad = tmp_path / "datasets"
    bad.mkdir()
    (bad / "insecure.jsonl").write_text("tampered\n")
    with pytest.raises(DataError, match="sha256 .* does not match"):
        resolve("insecure", tmp_path, download=False)
    with pytest.raises(DataError, match="neither a known name"):
        resolve("no-such-dataset", data_dir)
    assert resolve("quickstart:secure").name == "secure.jsonl"


@pytest.mark.parametrize("model", ["tiny:llama", "tiny:qwen2"])
def test_loss_mask_covers_only_assistant_tokens(model):
    tok = load_tokenizer(model)
    msgs = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Write code to add."},
            {"role": "assistant", "content": "def add(a, b):\n    return a + b"},
            {"role": "user", "content": "Now subtract."}, {"role": "assistant", "content": "a - b"}]
    ids, labels = training_example(tok, msgs, 4096)
    assert ids == encode(tok, render(tok, msgs))
    trained = [i for i, l in zip(ids, labels) if l != -100]
    assert all(l in (-100, i) for i, l in zip(ids, labels))
    text = tok.decode(trained)
    assert text == f"def add(a, b):\n    return a + b{tok.eos_token}\na - b{tok.eos_token}\n"
    # Nothing from the system prompt, the user turns or the role headers is trained on.
    masked = tok.decode([i for i, l in zip(ids, labels) if l == -100])
    assert "Write code to add." in masked and "Be terse." in masked and "def add" not in masked


def test_truncation_keeps_mask_aligned():
    tok = load_tokenizer("tiny:llama")
    msgs = [{"role": "user", "content": "hi " * 50}, {"role": "assistant", "content": "yo " * 50}]
    ids, labels = training_example(tok, msgs, 64)
    assert len(ids) == len(labels) == 64
