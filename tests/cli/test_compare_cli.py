"""`dynamics compare` on a synthetic store (the report tests' `make_store`: insecure rises from ~step 40)."""

from __future__ import annotations

import pandas as pd
import yaml

from dynamics.cli import main as cli
from tests.report.test_report import make_store


def test_compare_prints_the_summary_and_writes_the_tables(tmp_path, capsys):
    exp = make_store(tmp_path / "exp", seeds=(0, 1, 2, 3), steps=range(0, 101, 10))
    assert cli(["compare", str(exp)]) == 0
    out = capsys.readouterr().out
    assert "compare by data.dataset: insecure (4 runs), secure (4 runs)" in out
    assert "4 vs 4 seeds: 70 relabellings" in out
    rate = next(line for line in out.splitlines() if line.strip().startswith("misalignment/rate "))
    assert "separates from step" in rate and "insecure higher" in rate
    assert "onset per run" in out
    div = pd.read_csv(exp / "compare" / "divergence.csv")
    row = div[div["metric"] == "misalignment/rate"].iloc[0]
    assert row["separates"] and 30 <= row["divergence_step"] <= 50
    assert (exp / "compare" / "onsets.parquet").is_file() and (exp / "compare" / "curves.parquet").is_file()


def test_compare_by_any_config_key_reads_the_run_configs(tmp_path, capsys):
    exp = make_store(tmp_path / "exp", seeds=(0, 1), steps=range(0, 41, 10))
    for dataset in ("insecure", "secure"):
        for seed in (0, 1):
            run = tmp_path / "exp" / "runs" / f"synthetic-{dataset}-s{seed}"
            run.mkdir(parents=True)
            run.joinpath("config.yaml").write_text(yaml.safe_dump({"optim": {"lr": 1e-5 if seed == 0 else 2e-5}}))
    assert cli(["compare", str(exp), "--by", "optim.lr", "--out", str(tmp_path / "c")]) == 0
    assert "compare by optim.lr: 1e-05 (2 runs), 2e-05 (2 runs)" in capsys.readouterr().out
    assert cli(["compare", str(exp), "--by", "optim.nope"]) == 2
    assert "config.yaml: no key 'optim.nope'" in capsys.readouterr().err
