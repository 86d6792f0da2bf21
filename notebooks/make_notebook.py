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
shaded, a dashed reference line at the runs' `analysis.reference_step` (the paper's step 40 by default) and,
where `dynamics compare` finds the groups separate, a solid line at that step. Set `DYNAMICS_RESULTS` to read
another results dir; `dynamics report` writes the same figures as PNGs and one HTML page. The analysis is the
package's own (`dynamics.analysis`): this notebook only calls it.'''),
    ("code", '''\
%matplotlib inline
import json

import matplotlib.pyplot as plt
import pandas as pd

from dynamics.analysis.compare import compare
from dynamics.analysis.onset import onset_order
from dynamics.analysis.runs import analysis_frame, reference_line, run_groups
from dynamics.report import figure_metrics, plot_grid, plot_metric
from dynamics.report_html import ADAPTER_FIGURES, metric_figure, pca_figure
from dynamics.tracking.store import find_stores

df = analysis_frame(RESULTS_DIR)  # the metric store + the adapter trajectory (cosine to final, PCA)
REFERENCE_STEP, REFERENCE_LABEL = reference_line(RESULTS_DIR)
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
## When do the groups separate

`dynamics compare`: per metric, a cluster-based permutation test over seeds across steps; the divergence
step is the first step of the first significant cluster. Few seeds bound the smallest possible p-value.'''),
    ("code", '''\
result = compare(RESULTS_DIR, df=df) if len(run_groups(df)) >= 2 else None
if result is None:
    print("one group of runs: nothing to compare")
else:
    print("\\n".join(result.summary()))
    display(result.divergence[["metric", "group_a", "group_b", "separates", "divergence_step", "p",
                               "cluster_first", "cluster_last", "n_a", "n_b"]])
    display(onset_order(result.onsets))'''),
    ("markdown", '''\
## Every metric against step

`_ci_low/_ci_high` companions are drawn dotted inside their metric's figure; per-question rates share one
grid; `train/loss` is smoothed with a rolling mean over 10 optimizer steps.'''),
    ("code", '''\
for name, metrics in figure_metrics(df).items():
    if name.startswith("adapter/"):
        continue  # in the adapter section below
    if len(metrics) == 1:
        fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
        plot_metric(df, metrics[0], ax=ax, divergence_step=REFERENCE_STEP)
        step, p = result.divergence_step(metrics[0]) if result is not None else (None, None)
        if step is not None:
            ax.axvline(step, color="black", lw=1.6, label=f"separates: step {step} (p = {p:.3g})")
            ax.legend(fontsize=8)
    else:
        plot_grid(df, metrics, title=name, divergence_step=REFERENCE_STEP)
    plt.show()'''),
    ("markdown", '''\
## Adapter signals

From each checkpoint's saved LoRA adapter (the `adapter` evaluation; `dynamics evaluate DIR --evals adapter`
adds it to stored runs): the update's norm, its cosine to the previous and to the final checkpoint's update,
and each run's PCA trajectory.'''),
    ("code", '''\
adapter = [m for m in ADAPTER_FIGURES if m in set(df.loc[df["value"].notna(), "metric"])]
if not adapter:
    print("no adapter evaluation stored")
for m in adapter:
    display(metric_figure(df, m, (REFERENCE_STEP, REFERENCE_LABEL),
                          result.divergence_step(m) if result is not None else None))
pca = pca_figure(df)
if pca is not None:
    display(pca)'''),
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
