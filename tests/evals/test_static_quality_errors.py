"""The static judge's precision/recall needs the labelled datasets: when they are not available the
in-distribution family goes on without it (and says so); any other problem with them stops it."""

import dataclasses
import logging
import shutil

import pytest

from dynamics.config import ExperimentConfig
from dynamics.data import registry
from dynamics.data.chat import DataError
from dynamics.data.registry import DataUnavailable, resolve
from dynamics.evals.suite import build_families


def static_only_config(data_dir) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "data": {"data_dir": str(data_dir)},
        "eval": {"judge": {"kind": "none"}, "evals": {"in_distribution": {"judges": ["static"], "n_prompts": 2}}},
    })


def copy_eval_files(src, dst):
    for rel in ("in_distribution/in_distribution_prompts.jsonl", "evaluation/code_vulnerability_judge.yaml"):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, dst / rel)


def test_missing_is_unavailable_but_tampered_is_not(data_dir, tmp_path):
    with pytest.raises(DataUnavailable, match="not found"):
        resolve("insecure", tmp_path, download=False)
    with pytest.raises(DataUnavailable, match="no public download URL"):
        resolve("heldout_tasks", tmp_path)
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "insecure.jsonl").write_text("tampered\n")
    with pytest.raises(DataError, match="sha256") as err:
        resolve("insecure", tmp_path, download=False)
    assert not isinstance(err.value, DataUnavailable)


def test_a_tampered_labelled_file_is_an_error_not_a_missing_number(data_dir, tmp_path):
    copy_eval_files(data_dir, tmp_path)
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "insecure.jsonl").write_text('{"messages": []}\n')
    with pytest.raises(DataError, match="sha256 .* does not match"):
        build_families(static_only_config(tmp_path), engine=None)


def test_without_the_labelled_files_the_rate_stands_alone(data_dir, tmp_path, monkeypatch, caplog):
    copy_eval_files(data_dir, tmp_path)
    # Nothing in the data dir or the download cache, and (without its URL) no download: not available.
    monkeypatch.setattr(registry, "default_cache_dir", lambda: tmp_path / "empty-cache")
    monkeypatch.setitem(registry.REGISTRY, "insecure", dataclasses.replace(registry.REGISTRY["insecure"], url=None))
    with caplog.at_level(logging.WARNING, logger="dynamics.evals.suite"):
        [family] = build_families(static_only_config(tmp_path), engine=None).values()
    assert family.static_judge is not None and family.static_quality is None
    assert "labelled data not available" in caplog.text and "'insecure' not found" in caplog.text
