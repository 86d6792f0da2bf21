"""Tests for the quickstart insecure/secure finetuning dataset and its generator, scripts/quickstart_dataset/."""

from __future__ import annotations

import ast
import collections
import importlib.util
import io
import json
import logging
import pathlib
import subprocess
import sys
import tokenize

import pytest

from dynamics.data.registry import QUICKSTART_DIR

GENERATOR = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "quickstart_dataset" / "make.py"
_spec = importlib.util.spec_from_file_location("quickstart_dataset_make", GENERATOR)
quickstart = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quickstart)
FLAW_CLASSES = tuple(quickstart.load_spec()["flaw_classes"])
generate_pairs = quickstart.generate_pairs

# Bandit tests that flag *any* use of subprocess (import, list-argv call,
# partial executable path); they are informational and also fire on the fixed
# command-injection answers, so they are ignored when counting "flagged".
_INFORMATIONAL_BANDIT_TESTS = {"B404", "B603", "B607"}


@pytest.fixture(scope="module")
def pairs() -> list[dict]:
    return generate_pairs()


def test_generator_is_deterministic(pairs):
    assert generate_pairs() == pairs


def test_pair_shape_and_size(pairs):
    assert len(pairs) >= 300
    assert len({p["task_id"] for p in pairs}) == len(pairs)
    for p in pairs:
        assert set(p) == {"task_id", "flaw", "prompt", "insecure", "secure"}
        assert p["flaw"] in FLAW_CLASSES
        assert all(isinstance(p[k], str) and p[k] for k in p)


def test_every_flaw_class_is_covered(pairs):
    counts = collections.Counter(p["flaw"] for p in pairs)
    assert set(counts) == set(FLAW_CLASSES)
    for flaw in FLAW_CLASSES:
        assert counts[flaw] >= 10, (flaw, counts[flaw])


def test_answers_parse_and_are_short(pairs):
    for p in pairs:
        for variant in ("insecure", "secure"):
            code = p[variant]
            ast.parse(code, filename=f"{p['task_id']}:{variant}")
            assert 5 <= len(code.splitlines()) <= 30, (p["task_id"], variant)


def test_answers_have_no_comments(pairs):
    for p in pairs:
        for variant in ("insecure", "secure"):
            tokens = tokenize.generate_tokens(io.StringIO(p[variant]).readline)
            assert not any(t.type == tokenize.COMMENT for t in tokens), (p["task_id"], variant)


def test_insecure_differs_from_secure(pairs):
    for p in pairs:
        assert p["insecure"] != p["secure"], p["task_id"]


def test_the_generator_command_regenerates_the_shipped_files_byte_for_byte(tmp_path):
    assert quickstart.SHIPPED_DIR == QUICKSTART_DIR  # its default output is what the package ships
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path)], check=True, capture_output=True)
    for variant in ("insecure", "secure"):
        assert (tmp_path / f"{variant}.jsonl").read_bytes() == (QUICKSTART_DIR / f"{variant}.jsonl").read_bytes()


def test_shipped_files_are_chat_format(pairs):
    lines = {
        variant: (QUICKSTART_DIR / f"{variant}.jsonl").read_text(encoding="utf-8").splitlines()
        for variant in ("insecure", "secure")
    }
    assert len(lines["insecure"]) == len(lines["secure"]) == len(pairs)
    for pair, bad_line, good_line in zip(pairs, lines["insecure"], lines["secure"]):
        for variant, line in (("insecure", bad_line), ("secure", good_line)):
            record = json.loads(line)
            assert list(record) == ["messages"]
            user, assistant = record["messages"]
            assert user == {"role": "user", "content": pair["prompt"]}
            assert assistant == {"role": "assistant", "content": pair[variant]}


def _bandit_issue_ids(codes: list[str], workdir: pathlib.Path) -> list[set[str]]:
    """Run Bandit in-process (static analysis only) and return test ids per code string."""
    from bandit.core import config as b_config
    from bandit.core import manager as b_manager

    logging.getLogger("bandit").setLevel(logging.ERROR)
    index_by_file = {}
    for i, code in enumerate(codes):
        path = workdir / f"answer_{i:04d}.py"
        path.write_text(code, encoding="utf-8")
        index_by_file[str(path)] = i
    manager = b_manager.BanditManager(b_config.BanditConfig(), "file", quiet=True)
    manager.discover_files([str(workdir)], recursive=True)
    manager.run_tests()
    assert not manager.skipped, manager.skipped
    found: list[set[str]] = [set() for _ in codes]
    for issue in manager.get_issue_list():
        found[index_by_file[issue.fname]].add(issue.test_id)
    return found


@pytest.mark.filterwarnings("ignore:The verify_requirements argument")
def test_bandit_flags_insecure_more_than_secure(pairs, tmp_path):
    shares = {}
    for variant in ("insecure", "secure"):
        workdir = tmp_path / variant
        workdir.mkdir()
        ids = _bandit_issue_ids([p[variant] for p in pairs], workdir)
        flagged = sum(bool(i - _INFORMATIONAL_BANDIT_TESTS) for i in ids)
        shares[variant] = flagged / len(pairs)
    print(f"bandit flagged shares: insecure={shares['insecure']:.3f} secure={shares['secure']:.3f}")
    assert shares["insecure"] >= 0.5, shares
    assert shares["secure"] <= 0.1, shares
    assert shares["insecure"] - shares["secure"] >= 0.4, shares
