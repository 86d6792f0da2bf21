"""notebooks/dynamics.ipynb runs top to bottom on a synthetic store and draws its figures.

The kernel: nbclient starts the Jupyter kernel `python3`. Its kernelspec runs `python -m ipykernel_launcher`,
and jupyter_client replaces a bare `python` with the interpreter running this test, so the kernel is this
venv's Python (checked below through sys.prefix). CI must have installed the dev extras
(`pip install -e ".[dev]"`: nbclient, nbformat, ipykernel) and, where `jupyter kernelspec list` shows no
`python3` in the venv, run `python -m ipykernel install --sys-prefix` once. `dynamics` reaches the kernel
through PYTHONPATH (set here), so an editable install is not needed for the test.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("jupyter_client.kernelspec")

from tests.report.test_report import EXPECTED_FIGURES, make_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "dynamics.ipynb"
KERNEL = "python3"


def _run(nb, results_dir: Path, monkeypatch) -> nbformat.NotebookNode:
    if KERNEL not in kernelspec.find_kernel_specs():
        pytest.fail(f"no Jupyter kernel {KERNEL!r}: run `{sys.executable} -m ipykernel install --sys-prefix`")
    monkeypatch.setenv("DYNAMICS_RESULTS", str(results_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebook's %matplotlib inline decides
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(results_dir.parent / "jupyter-runtime"))  # no writes to ~
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=120,
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, if one fails
    return nb


def _outputs(nb, output_type: str):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == output_type]


def test_notebook_is_generated_and_clean():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert 'RESULTS_DIR = os.environ.get("DYNAMICS_RESULTS", "../results/quickstart")' in nb.cells[0].source
    assert not _outputs(nb, "display_data") and all(c.get("outputs", []) == [] for c in nb.cells)
    import runpy

    make = runpy.run_path(str(NOTEBOOK.parent / "make_notebook.py"))
    assert nbformat.writes(make["build"]()) + "\n" == NOTEBOOK.read_text(), "run notebooks/make_notebook.py"


def test_notebook_runs_on_a_synthetic_store(tmp_path, monkeypatch):
    make_store(tmp_path / "exp")
    nb = _run(nbformat.read(NOTEBOOK, as_version=4), tmp_path / "exp", monkeypatch)
    assert not _outputs(nb, "error")
    images = [o for o in _outputs(nb, "display_data") if "image/png" in o.data]
    assert len(images) == len(EXPECTED_FIGURES)
    assert nb.cells[-1].outputs[0].text.strip() == sys.prefix  # the kernel is this venv's Python
    text = "".join(o.get("text", "") for o in _outputs(nb, "stream"))
    assert "9 misaligned of 36 answers" in text  # 2 datasets x 3 seeds x 3 questions x 2; insecure k=0 misaligned
    html = "".join(o.data.get("text/html", "") for t in ("display_data", "execute_result") for o in _outputs(nb, t))
    assert html.index("insecure s0 step 60: answer 0") < html.index("answer 1 to")  # misaligned first


def test_notebook_runs_on_one_seed_without_records(tmp_path, monkeypatch):
    make_store(tmp_path / "exp", datasets=("secure",), seeds=(0,), steps=(0, 10, 20), records=False)
    nb = _run(nbformat.read(NOTEBOOK, as_version=4), tmp_path / "exp", monkeypatch)
    assert len([o for o in _outputs(nb, "display_data") if "image/png" in o.data]) == len(EXPECTED_FIGURES)
    assert "no misalignment sample records" in "".join(o.get("text", "") for o in _outputs(nb, "stream"))
