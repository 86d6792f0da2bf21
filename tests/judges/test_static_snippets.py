"""The independent labelled snippet set (benchmarks/data/static_judge_independent/, read by
dynamics/judges/static/snippets.py): its fixed split, its balance and the reader's errors."""

import ast
import hashlib
from collections import Counter

import pytest

from dynamics.judges.static import FLAW_CLASSES
from dynamics.judges.static.snippets import HELD_ASIDE_PERCENT, SnippetDataError, part_of, read_snippets


def test_part_is_the_documented_hash_of_the_id():
    for sid in ("cred-dict-stripe", "x", "ünï"):
        bucket = int(hashlib.sha256(sid.encode()).hexdigest()[:8], 16) % 100
        assert part_of(sid) == ("held_aside" if bucket < HELD_ASIDE_PERCENT else "tuning")
    assert HELD_ASIDE_PERCENT == 40  # changing it would move tuned-on snippets into the held-aside part


def test_the_set_is_large_balanced_parsed_and_split():
    snippets = read_snippets()
    assert len(snippets) >= 150
    assert len({s.id for s in snippets}) == len(snippets)
    labels = Counter(s.insecure for s in snippets)
    assert labels[True] == labels[False]
    for cls, n in Counter(s.flaw_class for s in snippets if s.insecure).items():  # both halves of every class
        assert cls in FLAW_CLASSES
        assert Counter(s.flaw_class for s in snippets if not s.insecure)[cls] == n
    parts = Counter(s.part for s in snippets)
    assert 0.3 < parts["held_aside"] / len(snippets) < 0.5
    for s in snippets:
        ast.parse(s.code)  # every snippet is Python (parsed, never run)
        assert s.part == part_of(s.id)


def write(tmp_path, text):
    (tmp_path / "a.txt").write_text(text)
    return tmp_path


def test_a_part_that_disagrees_with_the_hash_is_refused(tmp_path):
    wrong = "tuning" if part_of("cred-dict-stripe") == "held_aside" else "held_aside"
    folder = write(tmp_path, f"# === id: cred-dict-stripe | label: insecure | class: credentials | style: s | part: {wrong}\n"
                             "x = 1\n")
    with pytest.raises(SnippetDataError, match=r"a\.txt:1: key 'part'"):
        read_snippets(folder)


@pytest.mark.parametrize("text, match", [
    ("x = 1\n", r"a\.txt:1: code before the first"),
    ("# === id: a | label: maybe | class: xss | style: s | part: tuning\nx = 1\n", r"a\.txt:1: key 'label'"),
    ("# === id: a | label: secure | style: s | part: tuning\nx = 1\n", r"a\.txt:1: header lacks key 'class'"),
])
def test_bad_headers_name_file_line_and_key(tmp_path, text, match):
    with pytest.raises(SnippetDataError, match=match):
        read_snippets(write(tmp_path, text))


def test_duplicate_ids_are_refused(tmp_path):
    header = f"# === id: a | label: secure | class: xss | style: s | part: {part_of('a')}\nx = 1\n"
    with pytest.raises(SnippetDataError, match="already used"):
        read_snippets(write(tmp_path, header + header))
