"""Every input a run needs is checked on the driver before Ray starts: one line naming the file, line and
key, exit 2, in seconds (no training first, no worker traceback)."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from dynamics.cli import main
from dynamics.data.chat import DataError, read_chat_records
from tests.conftest import tiny_config

GOOD = {"messages": [{"role": "user", "content": "Write code."}, {"role": "assistant", "content": "x = 1"}]}


def _dataset(tmp_path, lines: list[bytes]):
    p = tmp_path / "data.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    return p


def test_role_order_is_checked_with_file_and_line(tmp_path):
    wrong = {"messages": [{"role": "assistant", "content": "x = 1"}, {"role": "user", "content": "Write code."}]}
    p = _dataset(tmp_path, [json.dumps(GOOD).encode(), json.dumps(wrong).encode()])
    with pytest.raises(DataError, match=rf"{p}:2: messages\[0\].role is 'assistant', expected 'user'"):
        read_chat_records(p)
    late_system = {"messages": [*GOOD["messages"], {"role": "system", "content": "s"}]}
    with pytest.raises(DataError, match=r":1: messages\[2\].role is 'system', expected 'user'"):
        read_chat_records(_dataset(tmp_path, [json.dumps(late_system).encode()]))


def test_bytes_that_are_not_utf8_name_file_and_line(tmp_path):
    p = _dataset(tmp_path, [json.dumps(GOOD).encode(), json.dumps(GOOD).encode().replace(b"Write", b"Wr\xffte")])
    with pytest.raises(DataError, match=rf"{p}:2: not UTF-8 \(byte 0xff"):
        read_chat_records(p)


@pytest.fixture
def ray_starts(monkeypatch):
    """Records every attempt to start or join Ray. (Not `ray.is_initialized()`: earlier tests in the same
    process may have started the session's local cluster.)"""
    import dynamics.orchestration.run as run

    calls = []
    monkeypatch.setattr(run, "ensure_ray", lambda *a, **k: calls.append(a))
    return calls


def _run_cli(tmp_path, capsys, ray_starts, **sections):
    cfg = tiny_config(tmp_path, **sections)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    rc = main(["run", str(path)])
    seconds = time.perf_counter() - t0
    assert ray_starts == [], "the check must come before Ray starts"
    return rc, capsys.readouterr().err, seconds


def test_bad_dataset_stops_the_cli_before_ray(tmp_path, capsys, ray_starts):
    wrong = {"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}
    p = _dataset(tmp_path, [json.dumps(GOOD).encode()] * 5 + [json.dumps(wrong).encode()])
    rc, err, seconds = _run_cli(tmp_path, capsys, ray_starts, data={"dataset": str(p), "max_examples": None})
    assert rc == 2 and f"{p}:6: messages[0].role" in err and "Traceback" not in err


def test_missing_evaluation_file_and_judge_prompt_stop_the_cli_before_ray(tmp_path, capsys, ray_starts):
    questions = tmp_path / "q.yaml"
    questions.write_text(yaml.safe_dump([{"id": "q1", "type": "free_form_judge_0_100", "paraphrases": ["Hi?"],
                                          "samples_per_paraphrase": 1, "judge_prompts": {"aligned": "{answer}"}}]))
    evals = {"logprob": {"items_file": str(tmp_path / "nowhere.json")},
             "mine": {"family": "misalignment", "questions_file": str(questions), "question_ids": "all"}}
    rc, err, _ = _run_cli(tmp_path, capsys, ray_starts, eval={"evals": evals, "judge": {"kind": "local"}})
    assert rc == 2, err
    assert "evaluation 'logprob'" in err and "nowhere.json" in err
    assert "evaluation 'mine'" in err and "question 'q1': key 'judge_prompts' lacks 'coherent'" in err
