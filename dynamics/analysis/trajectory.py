"""The parts of the adapter signals that need a whole run (docs/METRICS.md section 5).

The `adapter` evaluation stores per checkpoint what one checkpoint and its predecessor give (norms,
cosine to the previous update). What needs every checkpoint of a run is computed here, over the run's
stored checkpoints, from one k x k Gram matrix of the flattened updates (r x r products only):
  * `adapter/cos_final`: cosine of each checkpoint's update to the run's last checkpoint's;
  * `adapter/pc1`, `adapter/pc2`: the run's PCA trajectory, each checkpoint's coordinates on the first two
    principal components of its flattened updates (kernel PCA with the linear kernel: the eigenvectors of
    the doubly-centred Gram matrix scaled by the square roots of their eigenvalues equal the PCA scores of
    the flattened updates, without ever forming them); `explained` gives each component's variance share.
The sign of a principal component is arbitrary; it is fixed so that the last checkpoint's score is >= 0.
These rows carry source `analysis`; they are recomputed on demand and never written to the store. They cover
the checkpoints still on disk: with `train.keep_checkpoints` set, only the kept ones (the final one is kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dynamics.evals.adapter_math import AdapterFactors, cosine, gram_matrix


@dataclass
class Trajectory:
    steps: list[int]
    gram: np.ndarray
    cos_final: list[float | None]
    scores: np.ndarray  # checkpoints x components
    explained: np.ndarray  # variance share of each component


def pca_from_gram(gram: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """PCA scores (k x n_components) and variance shares of k vectors given only their Gram matrix."""
    k = gram.shape[0]
    centre = np.eye(k) - np.full((k, k), 1.0 / k)
    eigval, eigvec = np.linalg.eigh(centre @ gram @ centre)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0.0, None), eigvec[:, order]
    total = eigval.sum()
    n = min(n_components, k)
    scores = eigvec[:, :n] * np.sqrt(eigval[:n])
    signs = np.where(scores[-1] < 0, -1.0, 1.0)  # fix the arbitrary sign: the last checkpoint on the + side
    shares = eigval[:n] / total if total > 0 else np.zeros(n)
    return scores * signs, shares


def run_trajectory(checkpoints: list[tuple[int, Path]], n_components: int = 2) -> Trajectory | None:
    """From a run's (step, adapter dir) list in step order; None with fewer than two checkpoints."""
    if len(checkpoints) < 2:
        return None
    adapters = [AdapterFactors.load(d) for _, d in checkpoints]
    g = gram_matrix(adapters).numpy()
    last = len(checkpoints) - 1
    scores, shares = pca_from_gram(g, n_components)
    return Trajectory([s for s, _ in checkpoints], g, [cosine(g, i, last) for i in range(len(g))], scores, shares)


def run_checkpoints(experiment_dir: Path, run: str) -> list[tuple[int, Path]]:
    """(step, adapter dir) of a dynamics run's stored checkpoints."""
    from dynamics.train.checkpoint import list_checkpoints

    return [(s, d / "adapter") for s, d in list_checkpoints(experiment_dir / "ray" / run)]


def trajectory_rows(experiment_dir: str | Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Metric rows (the store's columns, source `analysis`) of `adapter/cos_final`, `adapter/pc1/2` for
    each run of `runs` (one row per run with run, experiment, dataset, seed, model) that has checkpoints."""
    rows = []
    for r in runs.itertuples(index=False):
        traj = run_trajectory(run_checkpoints(Path(experiment_dir), r.run))
        if traj is None:
            continue
        for i, step in enumerate(traj.steps):
            values = {"adapter/cos_final": traj.cos_final[i],
                      **{f"adapter/pc{c + 1}": float(traj.scores[i, c]) for c in range(traj.scores.shape[1])}}
            for metric, value in values.items():
                rows.append({"run": r.run, "experiment": r.experiment, "dataset": r.dataset, "seed": r.seed,
                             "model": r.model, "step": step, "metric": metric, "value": value, "n": None,
                             "source": "analysis", "evaluation": "adapter"})
    return pd.DataFrame(rows)


__all__ = ["Trajectory", "pca_from_gram", "run_trajectory", "run_checkpoints", "trajectory_rows"]
