"""Files written beside their target and renamed or linked into place: never half a file, no leftovers."""

import os

import pytest

from dynamics.files import temp_beside, write_atomic


def test_write_atomic_replaces_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "done.json"
    write_atomic(target, '{"a": 1}')
    write_atomic(target, '{"a": 2}')
    assert target.read_text() == '{"a": 2}'
    assert os.listdir(target.parent) == ["done.json"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "ledger.json"
    write_atomic(target, "old")
    with pytest.raises(TypeError):
        write_atomic(target, None)  # fails while writing the temporary file
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["ledger.json"]


def test_temp_beside_is_in_the_target_folder_and_removed(tmp_path):
    target = tmp_path / "x.parquet"
    with temp_beside(target, ".parquet") as tmp:
        assert tmp.parent == tmp_path and tmp.is_file() and tmp.suffix == ".parquet"
        os.link(tmp, target)  # what the metric store does: write once
    assert not tmp.exists() and target.exists()
