"""Writes notebooks/dynamics.ipynb (no outputs) from the cells below, so the notebook is reviewed here.

    .venv/bin/python notebooks/make_notebook.py            # rewrite the notebook after editing a cell
    .venv/bin/python notebooks/make_notebook.py --check    # exit 1 if the committed notebook is stale

Run the notebook from notebooks/ against any results dir: DYNAMICS_RESULTS=/path/to/results jupyter lab
(a results dir is an experiment dir with store/, or a folder of them). It needs `dynamics` importable
(`pip install -e .`, as scripts/setup.sh does) and a `python3` kernel of the same environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).with_name("dynamics.ipynb")

CELLS = [
    ("code", '''\
import os

RESULTS_DIR = os.environ.get("DYNAMICS_RESULTS", "../results/quickstart")'''),
    ("markdown", '''\
# Training dynamics

How each metric of a LoRA finetune evolves checkpoint by checkpoint (insecure vs secure finetunes).
Every figure: per dataset, the mean over seeds against the optimizer step, the min-max range over seeds
shaded, a dashed line at step 40 (where secure and insecure runs start to diverge). Set `DYNAMICS_RESULTS`
to read another results dir; `dynamics.report.write_report(results_dir, out_dir)` writes the same figures as PNGs.'''),
    ("code", '''\
%matplotlib inline
import json

import matplotlib.pyplot as plt
import pandas as pd

from dynamics.report import figure_metrics, plot_grid, plot_metric
from dynamics.tracking.store import find_stores, load_metrics

df = load_metrics(RESULTS_DIR)
if df.empty:
    raise ValueError(f"{RESULTS_DIR}: the metric store has no rows yet")
print(f"{len(df)} metric rows, {df['run'].nunique()} runs, {df['metric'].nunique()} metrics")
df.head()'''),
    ("markdown", "## Runs and the last checkpoint of each"),
    ("code", '''\
# the last step each run has written, per source (train: optimizer steps; eval: checkpoints)
runs = df.pivot_table(index=["dataset", "seed", "run"], columns="source", values="step", aggfunc="max")
runs'''),
    ("code", '''\
evals = df[(df["source"] == "eval") & ~df["metric"].str.startswith("timing/")]
last = evals[evals["step"] == evals.groupby("run")["step"].transform("max")]
last.pivot_table(index="metric", columns=["dataset", "seed", "step"], values="value").round(3)'''),
    ("markdown", '''\
## Every metric against step

`_ci_low/_ci_high` companions are drawn dotted inside their metric's figure; per-question rates share one
grid; `train/loss` is smoothed with a rolling mean over 10 optimizer steps.'''),
    ("code", '''\
for name, metrics in figure_metrics(df).items():
    if len(metrics) == 1:
        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
        plot_metric(df, metrics[0], ax=ax, divergence_step=40)
    else:
        plot_grid(df, metrics, title=name, divergence_step=40)
    plt.show()'''),
    ("markdown", '''\
## Sample answers of the last checkpoint

The misalignment family's judged answers at each run's last evaluated step, misaligned ones first
(lowest `aligned` score first).'''),
    ("code", '''\
records = pd.concat([s.records() for s in find_stores(RESULTS_DIR)], ignore_index=True)
sampled = records[records["family"] == "misalignment"]
if sampled.empty:
    print("no misalignment sample records in this store")
else:
    sampled = sampled[sampled["step"] == sampled.groupby("run")["step"].transform("max")]
    fields = pd.DataFrame([json.loads(d) for d in sampled["data"]], index=sampled.index)
    fields = fields.reindex(columns=["question_id", "aligned", "coherent", "misaligned", "answer"])
    answers = pd.concat([sampled[["dataset", "seed", "step"]], fields], axis=1)
    answers["misaligned"] = answers["misaligned"].eq(True)  # None (not counted) reads as not misaligned
    answers = answers.sort_values(["misaligned", "aligned"], ascending=[False, True], na_position="last",
                                  ignore_index=True)
    print(f"{answers['misaligned'].sum()} misaligned of {len(answers)} answers")
    with pd.option_context("display.max_colwidth", 300):
        display(answers.head(30))'''),
]


def build() -> nbformat.NotebookNode:
    cells = [new_code_cell(src) if kind == "code" else new_markdown_cell(src) for kind, src in CELLS]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    })
    for i, cell in enumerate(nb.cells):  # stable ids keep the diff of a regenerated notebook small
        cell["id"] = f"cell-{i:02d}"
    nbformat.validate(nb)
    return nb


def main(argv: list[str]) -> int:
    text = nbformat.writes(build()) + "\n"
    if "--check" in argv:
        if not NOTEBOOK.exists() or NOTEBOOK.read_text() != text:
            print(f"{NOTEBOOK} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    NOTEBOOK.write_text(text)
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
