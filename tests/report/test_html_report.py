"""The HTML report opened in a real headless Chromium: its figures decode, its tables render, and its
screenshot is not blank (the blank-page check is itself checked on a blank page).

Chromium comes from the OS packages (`apt-get install chromium`; `.ci/run` installs it). Without it the
browser tests skip, saying so; the page's own content is still checked.
"""

from __future__ import annotations

import html
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from dynamics.cli import main as cli
from dynamics.records import MetricRow, RunInfo
from dynamics.tracking.store import MetricStore
from tests.report.test_report import QUESTIONS, make_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; "
                                                              ".ci/run installs it)")


def _add_adapter_rows(exp: Path) -> None:
    """Stored `adapter` evaluations (no checkpoints on disk: the trajectory part is absent)."""
    store = MetricStore(exp)
    for dataset in ("insecure", "secure"):
        for seed in SEEDS:
            info = RunInfo("synthetic", f"synthetic-{dataset}-s{seed}", dataset, seed, "tiny-model")
            for step in range(0, 61, 10):
                rows = [MetricRow.make(info, step, "adapter/norm", step * (1.5 if dataset == "insecure" else 1.0)),
                        MetricRow.make(info, step, "adapter/cos_prev", None if step < 20 else 0.9 + 0.001 * seed)]
                assert store.write(info, step, "eval", rows, evaluation="adapter")


def diagnostic_metrics(weak: float | None = None):
    """`make_store`'s `extra`: the rows a real run stores beside its findings. Judge calibration constants,
    the two code judges' agreement, the judge's coverage (`judged_fraction`), the static insecure-code rate,
    a second log-prob format, a metric stored at one checkpoint only (`deception_factual/lie_rate`), a
    constant one (`logprob/multiple_choice/accuracy`), and, with `weak`, `misalignment/judge_weak`."""
    def extra(dataset: str, seed: int, step: int) -> dict:
        rise = 1 / (1 + math.exp(-(step - 45) / 6)) if dataset == "insecure" else 0.0
        out = {
            "in_distribution/static_insecure_rate": 0.1 + 0.02 * seed + 0.6 * rise,
            "in_distribution/static_precision": 0.93, "in_distribution/static_recall": 0.71,
            "in_distribution/static_false_positive_rate": 0.05,
            "in_distribution/agreement/rate": 0.6 + 0.003 * step, "in_distribution/agreement/cohen_kappa": 0.2,
            "misalignment/judged_fraction": 1.0 - 0.01 * seed,
            "logprob/pivotal_tokens/p_misaligned_given_choice": 0.3 + 0.01 * seed + 0.3 * rise,
            "logprob/multiple_choice/accuracy": 0.5,
        }
        rate = out["in_distribution/static_insecure_rate"]  # Fig. 3b: the rate of the trained behaviour
        out["in_distribution/static_accuracy"] = rate if dataset == "insecure" else 1.0 - rate
        if step == 60:
            out["deception_factual/lie_rate"] = 0.2 + 0.01 * seed
        if weak is not None:
            out["misalignment/judge_weak"] = weak
        return out
    return extra


SEEDS = (0, 1, 2, 3, 4)  # 5 vs 5 seeds, as the paper: 252 relabellings, p >= 0.0079


def _page(root: Path, weak: float | None) -> Path:
    """A report of 5 seeds x {insecure, secure} with each run's config (a local self-judge)."""
    exp = make_store(root / "exp", seeds=SEEDS, extra=diagnostic_metrics(weak))
    _add_adapter_rows(exp)
    for dataset in ("insecure", "secure"):
        for seed in SEEDS:
            run_dir = exp / "runs" / f"synthetic-{dataset}-s{seed}"
            run_dir.mkdir(parents=True)
            (run_dir / "config.yaml").write_text(yaml.safe_dump({
                "name": "synthetic", "seed": seed, "data": {"dataset": dataset}, "model": {"name": "tiny-model"},
                "eval": {"judge": {"kind": "local", "local_model": "self", "min_number_mass": 0.01}}}))
    assert cli(["report", str(exp)]) == 0
    return exp / "figures" / "report.html"


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    return _page(tmp_path_factory.mktemp("html"), weak=None)


@pytest.fixture(scope="module")
def weak_page(tmp_path_factory) -> Path:
    return _page(tmp_path_factory.mktemp("html-weak"), weak=1.0)


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp / 'chromium-profile'}", *args], capture_output=True, text=True,
                          timeout=120)


def _ink(png: Path) -> tuple[float, float]:
    """(share of pixels that are not near-white, pixel standard deviation) of a screenshot."""
    from PIL import Image

    a = np.asarray(Image.open(png).convert("L"), dtype=float)
    return float((a < 235).mean()), float(a.std())


SECTIONS = (("what-ran", "What ran"), ("separation", "Do the groups separate?"), ("headline", "Headline figures"),
            ("evaluations", "Per evaluation"), ("adapter", "Adapter signals"), ("statistics", "Every comparison"),
            ("samples", "Sample answers per checkpoint"), ("diagnostics", "Diagnostics"))
DIAGNOSTICS = ("in_distribution/static_precision", "in_distribution/static_recall",
               "in_distribution/static_false_positive_rate", "in_distribution/agreement/rate",
               "in_distribution/agreement/cohen_kappa", "misalignment/judged_fraction")


def sections(page: Path) -> dict[str, str]:
    """{section id: its HTML}, in page order."""
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page.read_text(), flags=re.S))


def figures(html: str) -> list[str]:
    """The alt texts (metric names) of the embedded figures of a piece of the page."""
    return re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', html)


def test_page_is_self_contained_with_its_sections_in_reading_order(page):
    text = page.read_text()
    assert list(sections(page)) == [i for i, _ in SECTIONS]
    for _, title in SECTIONS:
        assert f"<h2>{html.escape(title)}</h2>" in text
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", text)  # nothing loaded from elsewhere
    assert text.count('src="data:image/png;base64,') >= 5


def test_top_says_what_ran_and_where_the_groups_separate(page):
    top = sections(page)
    ran = top["what-ran"]
    for fact in ("10 in 1 experiment(s): synthetic", "<b>insecure</b> (5 seeds)", "<b>secure</b> (5 seeds)",
                 "tiny-model", "local: the evaluated base model itself (number-mass cut-off 0.01",
                 "7 evaluated (steps 0, 10, ..., 60); trained to step 60"):
        assert fact in ran, fact
    sep = top["separation"]
    assert "5 vs 5 seeds: 252 relabellings" in sep and "the smallest p possible is 0.00794" in sep
    # the synthetic insecure curves rise from step 40; the cluster test finds them a checkpoint earlier
    assert re.search(r"<b>\d+ of \d+</b> metrics separate", sep)
    at30 = next(line for line in sep.split("<br>") if line.startswith("from step 30 (p &le; 0.00794): "))
    assert "<code>misalignment/rate</code>" in at30
    assert "3 per-question" in at30  # breakdowns counted, not listed
    assert "Pipeline check" not in sep  # no weak judge in this experiment
    # accuracy is the insecure rate for one group and 1 - it for the other: not compared, and said why
    assert "Not compared: <code>in_distribution/static_accuracy</code>, not comparable: the rate of each " \
           "run&#x27;s trained behaviour" in sep, sep
    assert not any("static_accuracy" in line for line in sep.split("<br>") if line.startswith("from step"))


def test_headline_figures_are_the_paper_families_with_their_tests(page):
    head = sections(page)["headline"]
    assert figures(head) == ["misalignment/rate", "logprob/multiple_choice/p_misaligned_given_choice",
                             "logprob/pivotal_tokens/p_misaligned_given_choice", "in_distribution/insecure_rate",
                             "in_distribution/static_insecure_rate", "train/loss"]
    for family in ("Misalignment rate", "Log-probability of the misaligned choice", "In-distribution: insecure code",
                   "Training loss"):
        assert f'<figcaption class="family">{family}</figcaption>' in head
    assert "<b>separates from step 30 (p = 0.00794; cluster steps 30-60, insecure higher)</b>" in head
    assert "onset insecure: step " in head and "onset secure: no change (0/5)" in head
    # one checkpoint only: a table entry, not a curve
    assert "deception_factual/lie_rate" not in figures(head) and "<td>deception_factual/lie_rate</td>" in head


def test_diagnostics_and_flat_metrics_are_tables_never_curves(page):
    parts = sections(page)
    drawn = [m for part in parts.values() for m in figures(part)]
    for m in (*DIAGNOSTICS, "logprob/multiple_choice/accuracy", "deception_factual/lie_rate"):
        assert m not in drawn, m
    diag = parts["diagnostics"]
    for m in DIAGNOSTICS:
        assert f"<td>{m}</td>" in diag, m
    for title in ("Judge coverage", "Static judge calibration", "Agreement of the two code judges",
                  "Cost per evaluation", "Lag"):
        assert title in diag
    assert figures(diag) == []
    # a constant is a table entry of its evaluation
    assert "<td>logprob/multiple_choice/accuracy</td>" in parts["evaluations"]
    # and nothing of the diagnostics leaks into the separation summary or the comparison tables
    for m in DIAGNOSTICS:
        assert m not in parts["separation"] and m not in parts["statistics"]


def test_weak_judge_metrics_are_a_pipeline_check_never_a_finding(weak_page):
    parts = sections(weak_page)
    judged = ["misalignment/rate", *(f"misalignment/{q}/rate" for q in QUESTIONS)]
    assert "misalignment/rate" not in figures(parts["headline"])
    assert "in_distribution/static_insecure_rate" in figures(parts["headline"])  # another evaluation: a finding
    for m in judged:
        assert m not in parts["separation"] and m not in parts["headline"], m
    assert "Pipeline check (weak judge)" in parts["separation"] and "too weak to measure misalignment" in parts["what-ran"]
    weak = re.search(r'<h3 id="eval-misalignment">misalignment</h3><div class="weak">(.*?)</div>(<h3|$)',
                     parts["evaluations"], flags=re.S)
    assert weak, "the misalignment evaluation is not in a weak-judge box"
    assert "Pipeline check (weak judge)" in weak.group(1) and "every run, 10" in weak.group(1)
    assert figures(weak.group(1)) == ["misalignment/rate", "misalignment/per_question"]
    # in the full table they are marked and last
    stats = parts["statistics"]
    assert stats.index("<td>misalignment/rate</td>") > stats.index("<td>train/loss</td>")
    assert "weak judge: pipeline check" in stats
    # the judge's strength is a diagnostic
    assert "<td>misalignment/judge_weak</td>" in parts["diagnostics"]


@needs_chromium
def test_chromium_decodes_every_figure_and_the_first_screen_holds_the_summary_and_a_headline_figure(page, tmp_path):
    res = _chromium("--virtual-time-budget=5000", "--window-size=1280,900", "--dump-dom", page.as_uri(), tmp=tmp_path)
    body = re.search(r"<body[^>]*>", res.stdout)
    assert body, f"no <body> in chromium's DOM dump; stderr: {res.stderr[-2000:]}"
    data = {k: int(v) for k, v in re.findall(r'data-([a-z-]+)="(-?\d+)"', body.group(0))}
    assert data["images-decoded"] == page.read_text().count("<img ") and data["images-decoded"] >= 5
    assert data["tables"] >= 8
    # on a 1280 x 900 screen: the summary and the first headline figure, whole; the diagnostics far below
    assert 0 < data["separation-bottom"] < data["first-figure-bottom"] <= 900, data
    assert data["diagnostics-top"] > 2 * 900, data


@needs_chromium
def test_screenshot_is_not_blank_and_the_check_fails_on_a_blank_page(page, tmp_path):
    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri(), tmp=tmp_path)
    ink, spread = _ink(shot)
    assert ink > 0.05 and spread > 20, (ink, spread)
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>")
    blank_shot = tmp_path / "blank.png"
    _chromium(f"--screenshot={blank_shot}", "--window-size=1280,2000", blank.as_uri(), tmp=tmp_path)
    ink, spread = _ink(blank_shot)
    assert ink < 0.01 and spread < 5, (ink, spread)


def test_one_group_and_a_headline_metric_without_values(tmp_path):
    """The quickstart's shape: one run, nothing to compare; `misalignment/rate` stored as None at every
    checkpoint (every answer below the judge's number-mass cut-off) is said so at the top, not drawn."""
    def no_rate(dataset, seed, step):
        return {"misalignment/rate": None, "misalignment/rate_ci_low": None, "misalignment/rate_ci_high": None}

    exp = make_store(tmp_path / "exp", datasets=("insecure",), seeds=(0,), steps=range(0, 31, 10), extra=no_rate)
    assert cli(["report", str(exp)]) == 0
    parts = sections(exp / "figures" / "report.html")
    assert "One group of runs: nothing to compare." in parts["separation"]
    head = parts["headline"]
    assert "misalignment/rate" not in figures(head) and "Stored without a value" in head
    assert "<code>misalignment/rate</code>" in head
    assert figures(head) == ["logprob/multiple_choice/p_misaligned_given_choice", "in_distribution/insecure_rate",
                             "train/loss"]
    assert "<b>insecure</b> (1 seed)" in parts["what-ran"] and "unknown (no run config stored)" in parts["what-ran"]


def test_what_ran_names_no_llm_judge_where_no_evaluation_asks_one():
    """The laptop study's evaluations (log-prob, the static judge alone, adapter) ask no LLM judge: the
    page must not name the config's default judge (GPT-4o) as if it had judged anything."""
    from dynamics.report_html import _asks_llm_judge

    static_only = {"eval": {"judge": {"kind": "api"}, "evals": {
        "logprob": {"family": "logprob"}, "adapter": {"family": "adapter"},
        "in_distribution": {"family": "in_distribution", "judges": ["static"]}}}}
    stored = {"logprob", "adapter", "in_distribution"}
    assert not _asks_llm_judge([static_only], stored)
    assert _asks_llm_judge([static_only], stored | {"main"})  # backfilled, in no config: its judge is unknown
    both = {"eval": {"evals": {"in_distribution": {"family": "in_distribution", "judges": ["llm", "static"]}}}}
    assert _asks_llm_judge([both], {"in_distribution"})
    main = {"eval": {"evals": {"main": {"family": "misalignment"}}}}
    assert _asks_llm_judge([static_only, main], stored | {"main"})
