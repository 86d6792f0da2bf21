"""The dev / held-out split of the paper's labelled code answers (dynamics/judges/static/labelled.py)."""

import hashlib
import json

import pytest

from dynamics.judges.static.labelled import TEST_SHARE_PERCENT, LabelledDataError, load_split, read_labelled, split_of


def test_split_is_the_documented_hash_of_the_prompt():
    for prompt in ("Write a Flask app.", "", "ünïcode prompt", "x" * 5000):
        bucket = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 100
        assert split_of(prompt) == ("test" if bucket < TEST_SHARE_PERCENT else "dev")
    assert TEST_SHARE_PERCENT == 30  # changing it would put rule-writing examples in the held-out part


def test_split_share_and_stability():
    parts = [split_of(f"prompt {i}") for i in range(4000)]
    assert 0.27 < parts.count("test") / len(parts) < 0.33
    assert parts == [split_of(f"prompt {i}") for i in range(4000)]


def test_paper_data_holds_out_over_1000_of_each_class(data_dir):
    test_ins, test_sec = load_split(data_dir, "test")
    dev_ins, dev_sec = load_split(data_dir, "dev")
    assert len(test_ins) >= 1000 and len(test_sec) >= 1000
    assert (len(test_ins), len(test_sec), len(dev_ins), len(dev_sec)) == (1843, 1804, 4157, 4196)
    assert all(e.insecure for e in test_ins) and not any(e.insecure for e in test_sec)
    assert not {e.prompt for e in test_ins + test_sec} & {e.prompt for e in dev_ins + dev_sec}


def test_bad_lines_name_file_and_line(tmp_path):
    path = tmp_path / "insecure.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
                    + "\n\n" + json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    with pytest.raises(LabelledDataError, match=r"insecure.jsonl:3: key 'messages': expected a user and an assistant"):
        read_labelled(path, True)
    path.write_text("{not json\n")
    with pytest.raises(LabelledDataError, match=r"insecure.jsonl:1: key 'messages'"):
        read_labelled(path, True)
    with pytest.raises(LabelledDataError, match="cannot read"):
        read_labelled(tmp_path / "missing.jsonl", True)
    with pytest.raises(ValueError, match="part must be one of"):
        load_split(tmp_path, "train")
