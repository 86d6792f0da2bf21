"""The W&B workspace view, built offline from a synthetic store and read back from its serialised model.
Saving it needs W&B online, which this box does not have (docs/cluster.md: not exercised here)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("wandb_workspaces")

from dynamics.cli import main as cli  # noqa: E402
from dynamics.tracking.dashboard import build_workspace, spec_from_results  # noqa: E402
from tests.report.test_report import make_store  # noqa: E402


def test_view_plots_each_headline_metric_against_eval_step_grouped_by_dataset(tmp_path):
    exp = make_store(tmp_path / "exp", seeds=(0, 1, 2, 3), steps=range(0, 101, 10))
    spec = spec_from_results(exp)
    assert "misalignment/rate" in spec.metrics and spec.sample_tables == ["misalignment"]
    assert spec.titles["misalignment/rate"].startswith("misalignment/rate: separates from step")
    model = json.loads(build_workspace(spec)._to_model().model_dump_json(by_alias=True, exclude_none=True))
    sections = model["spec"]["section"]["panelBankConfig"]["sections"]
    panels = {s["name"]: s["panels"] for s in sections}
    curves = panels["When do the runs diverge (mean over seeds, min-max)"]
    plotted = {p["config"]["metrics"][0]: p["config"] for p in curves}
    assert set(plotted) == {f"eval/{m}" for m in spec.metrics}
    for cfg in plotted.values():
        assert cfg["xAxis"] == "eval/step" and cfg["groupAgg"] == "mean" and cfg["groupArea"] == "minmax"
    assert panels["Training"][0]["config"]["metrics"] == ["train/loss"]
    assert panels["Evaluation lag"][0]["config"]["xAxis"] == "pool/checkpoint"
    assert "eval/misalignment/samples" in json.dumps(panels["Sample answers (misaligned first)"])
    runset = model["spec"]["section"]["runSets"][0]
    assert runset["grouping"] == [{"section": "config", "name": "data.value.dataset"}]  # W&B's path of data.dataset
    assert runset["search"] == {"query": "^synthetic-", "isRegex": True}  # the experiment's runs


def test_cli_dry_run_describes_the_view(tmp_path, capsys):
    exp = make_store(tmp_path / "exp", seeds=(0, 1), steps=range(0, 31, 10))
    assert cli(["dashboard", str(exp), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "workspace 'dynamics: synthetic'" in out and "Training: 1 panel(s): train/loss" in out
