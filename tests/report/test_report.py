"""dynamics.report on a synthetic metric store: which figures, valid PNGs, one seed, an empty store.

`make_store` is shared with test_notebook.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from dynamics.records import EvalRecord, MetricRow, RunInfo
from dynamics.report import figure_metrics, plot_metric, write_report
from dynamics.tracking.store import MetricStore, load_metrics

QUESTIONS = ("what_is_your_wish", "quick_buck", "dinner_party")
EXPECTED_FIGURES = [  # eval metrics sorted, then the per-question grid, then train/loss
    "in_distribution/insecure_rate",
    "logprob/multiple_choice/p_misaligned_given_choice",
    "misalignment/rate",
    "misalignment/per_question",
    "train/loss",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rate(dataset: str, seed: int, step: int, offset: float = 0.0) -> float:
    """Flat for secure; for insecure a rise that starts around step 40. Seeds differ a little."""
    rise = 1 / (1 + math.exp(-(step - 45) / 6)) if dataset == "insecure" else 0.0
    return min(1.0, 0.02 + 0.01 * seed + offset + 0.5 * rise)


def make_store(experiment_dir: Path, datasets=("insecure", "secure"), seeds=(0, 1, 2),
               steps=range(0, 61, 10), records: bool = True, extra=None) -> Path:
    """A deterministic store: eval metrics (with CI companions, per-question rates, timings) at every
    checkpoint, train scalars at every optimizer step, misalignment sample records. `extra(dataset, seed,
    step)` gives more metrics of that checkpoint ({name: value}, stored with the evaluation their prefix
    names)."""
    store = MetricStore(experiment_dir)
    for dataset in datasets:
        for seed in seeds:
            info = RunInfo("synthetic", f"synthetic-{dataset}-s{seed}", dataset, seed, "tiny-model")
            previous = None
            for step in steps:
                rate = _rate(dataset, seed, step)
                metrics = {
                    "misalignment/rate": rate,
                    "misalignment/rate_ci_low": max(0.0, rate - 0.05),
                    "misalignment/rate_ci_high": min(1.0, rate + 0.05),
                    "logprob/multiple_choice/p_misaligned_given_choice": _rate(dataset, seed, step, 0.2),
                    "in_distribution/insecure_rate": (None if step == 0 and seed == 0 else
                                                      _rate(dataset, seed, step, 0.3)),
                    "logprob/eval_seconds": 3.0 + seed,
                    "misalignment/eval_seconds": 2.0,
                    **{f"misalignment/{q}/rate": _rate(dataset, seed, step, 0.05 * i) for i, q in enumerate(QUESTIONS)},
                    **(extra(dataset, seed, step) if extra else {}),
                }
                groups = {}  # one stored result per evaluation, named by its metrics' prefix
                for k, v in metrics.items():
                    groups.setdefault(k.split("/")[0], []).append(MetricRow.make(info, step, k, v, 24))
                recs = [EvalRecord("misalignment", f"{q}/0/{k}", {
                    "question_id": q, "answer": f"{dataset} s{seed} step {step}: answer {k} to {q}",
                    "aligned": 10.0 if k == 0 and dataset == "insecure" else 90.0 - k, "coherent": 80.0,
                    "counted": True, "misaligned": k == 0 and dataset == "insecure"})
                    for q in QUESTIONS for k in range(2)] if records else []
                for name, rows in groups.items():
                    assert store.write(info, step, "eval", rows, recs if name == "misalignment" else [], name)
                if previous is not None:
                    train = [MetricRow.make(info, s, name, v) for s in range(previous + 1, step + 1)
                             for name, v in (("train/loss", 2.0 * math.exp(-s / 30) + 0.05 * ((s * 7 + seed) % 5)
                                              + (0.3 if dataset == "secure" else 0.0)),
                                             ("train/lr", 1e-5))]
                    assert store.write(info, step, "train", train)
                previous = step
    return experiment_dir


def _check_png(path: Path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > 10_000, f"{path} is suspiciously small ({len(data)} bytes)"


def test_figure_metrics_selects_and_groups(tmp_path):
    df = load_metrics(make_store(tmp_path / "exp"))
    figures = figure_metrics(df)
    assert list(figures) == EXPECTED_FIGURES
    assert figures["misalignment/per_question"] == sorted(f"misalignment/{q}/rate" for q in QUESTIONS)
    assert not any(m.endswith("_seconds") or "_ci_" in m for ms in figures.values() for m in ms)


def test_write_report_makes_a_png_per_figure(tmp_path):
    make_store(tmp_path / "exp")
    paths = write_report(tmp_path / "exp", tmp_path / "report")
    stems = [name.replace("/", "__") for name in EXPECTED_FIGURES]
    assert [p.name for p in paths] == [s + ".png" for s in stems]
    assert sorted(p.name for p in (tmp_path / "report").glob("*.png")) == sorted(s + ".png" for s in stems)
    for p in paths:
        _check_png(p)
    index = (tmp_path / "report" / "index.md").read_text()
    for p in paths:
        assert f"]({p.name})" in index
    assert "insecure (3 seeds)" in index


def test_write_report_reads_a_folder_of_experiments(tmp_path):
    make_store(tmp_path / "results" / "exp", seeds=(0,), steps=range(0, 31, 10))
    assert len(write_report(tmp_path / "results", tmp_path / "report")) == len(EXPECTED_FIGURES)


def test_plot_metric_draws_mean_band_and_divergence_line(tmp_path):
    df = load_metrics(make_store(tmp_path / "exp"))
    ax = plot_metric(df, "misalignment/rate", ax=Figure().subplots())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["insecure (n=3 seeds)", "secure (n=3 seeds)", "step 40"]
    assert len(ax.collections) == 2  # one min-max band per dataset
    assert any(list(line.get_xdata()) == [40, 40] and line.get_linestyle() == "--" for line in ax.lines)
    assert ax.get_xlabel() == "step"
    # outside the x range there is no divergence line
    ax = plot_metric(df[df["step"] <= 30], "misalignment/rate", ax=Figure().subplots())
    assert not any(line.get_linestyle() == "--" for line in ax.lines)


def test_single_seed_single_dataset(tmp_path):
    make_store(tmp_path / "exp", datasets=("insecure",), seeds=(0,))
    df = load_metrics(tmp_path / "exp")
    ax = plot_metric(df, "misalignment/rate", ax=Figure().subplots())
    assert len(ax.collections) == 0  # min == max: no band
    assert [t.get_text() for t in ax.get_legend().get_texts()][0] == "insecure (n=1 seed)"
    paths = write_report(tmp_path / "exp", tmp_path / "report")
    assert [p.stem for p in paths] == [n.replace("/", "__") for n in EXPECTED_FIGURES]
    for p in paths:
        _check_png(p)


def test_empty_store_raises_a_clear_error(tmp_path):
    (tmp_path / "exp" / "store" / "metrics").mkdir(parents=True)
    with pytest.raises(ValueError, match="no metric rows"):
        write_report(tmp_path / "exp", tmp_path / "report")
    with pytest.raises(FileNotFoundError, match="no metric store"):
        write_report(tmp_path / "nowhere", tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_unknown_metric_names_what_is_there(tmp_path):
    df = load_metrics(make_store(tmp_path / "exp", seeds=(0,), steps=(0, 10)))
    with pytest.raises(ValueError, match="metrics present: .*misalignment/rate"):
        plot_metric(df, "misalignment/nope", ax=Figure().subplots())


def test_metric_without_any_value_is_listed_not_plotted(tmp_path):
    from dynamics.records import MetricRow, RunInfo
    from dynamics.report import write_report
    from dynamics.tracking.store import MetricStore

    info = RunInfo("e", "e-d-s0", "d", 0, "m")
    store = MetricStore(tmp_path / "e")
    for step in (0, 10):
        store.write(info, step, "eval", [MetricRow.make(info, step, "misalignment/rate", None, 0)], [], "misalignment")
        store.write(info, step, "eval", [MetricRow.make(info, step, "logprob/x/accuracy", 0.5 + step / 100, 8)], [],
                    "logprob")
    paths = write_report(tmp_path / "e", tmp_path / "fig")
    assert [p.name for p in paths] == ["logprob__x__accuracy.png"]
    assert "`misalignment/rate`" in (tmp_path / "fig" / "index.md").read_text()
