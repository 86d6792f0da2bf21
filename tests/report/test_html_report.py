"""The HTML report opened in a real headless Chromium: its figures decode, its tables render, and its
screenshot is not blank (the blank-page check is itself checked on a blank page).

Chromium comes from the OS packages (`apt-get install chromium`; `.ci/run` installs it). Without it the
browser tests skip, saying so; the page's own content is still checked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dynamics.cli import main as cli
from dynamics.records import MetricRow, RunInfo
from dynamics.tracking.store import MetricStore
from tests.report.test_report import make_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; "
                                                              ".ci/run installs it)")


def _add_adapter_rows(exp: Path) -> None:
    """Stored `adapter` evaluations (no checkpoints on disk: the trajectory part is absent)."""
    store = MetricStore(exp)
    for dataset in ("insecure", "secure"):
        for seed in (0, 1, 2):
            info = RunInfo("synthetic", f"synthetic-{dataset}-s{seed}", dataset, seed, "tiny-model")
            for step in range(0, 61, 10):
                rows = [MetricRow.make(info, step, "adapter/norm", step * (1.5 if dataset == "insecure" else 1.0)),
                        MetricRow.make(info, step, "adapter/cos_prev", None if step < 20 else 0.9 + 0.001 * seed)]
                assert store.write(info, step, "eval", rows, evaluation="adapter")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    exp = make_store(tmp_path_factory.mktemp("html") / "exp", seeds=(0, 1, 2))
    _add_adapter_rows(exp)
    assert cli(["report", str(exp)]) == 0
    return exp / "figures" / "report.html"


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={tmp / 'chromium-profile'}", *args], capture_output=True, text=True,
                          timeout=120)


def _ink(png: Path) -> tuple[float, float]:
    """(share of pixels that are not near-white, pixel standard deviation) of a screenshot."""
    from PIL import Image

    a = np.asarray(Image.open(png).convert("L"), dtype=float)
    return float((a < 235).mean()), float(a.std())


def test_page_is_self_contained_with_every_section(page):
    text = page.read_text()
    for title in ("Runs", "When do the groups separate", "Onset per run", "Headline metrics", "Adapter signals",
                  "Sample answers per checkpoint", "Evaluation lag and cost"):
        assert f"<h2>{title}</h2>" in text
    assert not re.search(r"""(src|href)=["'](?!data:)""", text)  # nothing loaded from elsewhere
    assert text.count('src="data:image/png;base64,') >= 5
    assert "misalignment/rate" in text and "3 vs 3 seeds: 20 relabellings" in text and "paper: step 40" in text


@needs_chromium
def test_chromium_decodes_every_figure_and_renders_the_tables(page, tmp_path):
    res = _chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri(), tmp=tmp_path)
    body = re.search(r"<body[^>]*>", res.stdout)
    assert body, f"no <body> in chromium's DOM dump; stderr: {res.stderr[-2000:]}"
    decoded = int(re.search(r'data-images-decoded="(\d+)"', body.group(0)).group(1))
    assert decoded == page.read_text().count("<img ") and decoded >= 5
    assert int(re.search(r'data-tables="(\d+)"', body.group(0)).group(1)) >= 5


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
