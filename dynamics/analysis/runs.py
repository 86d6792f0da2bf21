"""The runs of a results dir for analysis: their configs, how they group, and one metric frame.

`analysis_frame` is the metric store plus the adapter trajectory rows (`dynamics.analysis.trajectory`) of
every run that has the `adapter` evaluation stored. `run_groups` splits the runs by one config key
(`data.dataset` by default, read from the store's dataset column; any other dotted key from each run's
`runs/<run>/config.yaml`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

DEFAULT_BY = "data.dataset"


def experiment_dirs(results_dir: str | Path) -> list[Path]:
    from dynamics.tracking.store import find_stores

    return [s.root.parent for s in find_stores(results_dir)]


def run_configs(results_dir: str | Path) -> dict[str, dict]:
    """{run: its resolved config as stored in runs/<run>/config.yaml} over every experiment of a results dir."""
    out = {}
    for exp in experiment_dirs(results_dir):
        for path in sorted((exp / "runs").glob("*/config.yaml")):
            out[path.parent.name] = yaml.safe_load(path.read_text()) or {}
    return out


def config_value(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def run_groups(df: pd.DataFrame, by: str = DEFAULT_BY, results_dir: str | Path | None = None) -> dict[str, list[str]]:
    """{group label: its runs (sorted)} by the config key `by`."""
    runs = sorted(df["run"].dropna().unique())
    if by in (DEFAULT_BY, "dataset"):
        labels = df.drop_duplicates("run").set_index("run")["dataset"].astype(str).to_dict()
    else:
        if results_dir is None:
            raise ValueError(f"grouping by {by!r} reads each run's config: give the results dir")
        configs = run_configs(results_dir)
        labels = {}
        for run in runs:
            if run not in configs:
                raise ValueError(f"run {run!r}: no runs/{run}/config.yaml under {results_dir}, so its {by!r} is "
                                 "unknown (group by data.dataset, which the store records)")
            try:
                labels[run] = _label(config_value(configs[run], by))
            except KeyError:
                raise ValueError(f"runs/{run}/config.yaml: no key {by!r} (a dotted config key, e.g. "
                                 "data.dataset, optim.lr, lora.r)") from None
    groups: dict[str, list[str]] = {}
    for run in runs:
        groups.setdefault(labels[run], []).append(run)
    return dict(sorted(groups.items()))


def _label(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip() \
        if isinstance(value, (list, dict)) else str(value)


def analysis_frame(results_dir: str | Path, include_adapter: bool = True) -> pd.DataFrame:
    """The store's metric rows, plus `adapter/cos_final` and `adapter/pc1/2` (source `analysis`) for the
    runs with a stored `adapter` evaluation."""
    from dynamics.analysis.trajectory import trajectory_rows
    from dynamics.tracking.store import MetricStore

    frames = []
    for exp in experiment_dirs(results_dir):
        df = MetricStore(exp).metrics()
        frames.append(df)
        if include_adapter and not df.empty:
            with_adapter = df[df["metric"] == "adapter/norm"].drop_duplicates("run")
            if not with_adapter.empty:
                cols = ["run", "experiment", "dataset", "seed", "model"]
                extra = trajectory_rows(exp, with_adapter[cols])
                if not extra.empty:
                    frames.append(extra.astype({"seed": "Int64", "step": "Int64", "n": "Int64"}))
    if not frames:
        raise FileNotFoundError(f"{results_dir}: no metric store (expected <experiment>/store/)")
    frames = [f for f in frames if not f.empty] or frames[:1]
    return pd.concat(frames, ignore_index=True)


def run_table(results_dir: str | Path, df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its identity, the config keys that differ between runs, its last steps, done.json."""
    configs = run_configs(results_dir)
    flat = {run: _flatten(cfg) for run, cfg in configs.items()}
    keys = sorted({k for f in flat.values() for k in f})
    differing = [k for k in keys if len({repr(f.get(k)) for f in flat.values()}) > 1 and k != "seed"]
    rows = []
    for run, g in df.groupby("run", sort=True):
        first = g.iloc[0]
        row = {"run": run, "dataset": first["dataset"], "seed": first["seed"], "model": first["model"],
               "last_train_step": g.loc[g["source"] == "train", "step"].max(),
               "last_eval_step": g.loc[g["source"] == "eval", "step"].max()}
        row.update({k: flat.get(run, {}).get(k) for k in differing if k not in ("data.dataset",)})
        done = _done(results_dir, run)
        row["done"] = "yes" if done else "no"
        if done and done.get("stopped"):
            row["done"] = f"stopped at step {done['stopped'].get('stopped_step')} ({done['stopped'].get('rule')})"
        rows.append(row)
    return pd.DataFrame(rows)


def _done(results_dir, run: str) -> dict | None:
    import json

    for exp in experiment_dirs(results_dir):
        path = exp / "runs" / run / "done.json"
        if path.is_file():
            return json.loads(path.read_text())
    return None


def _flatten(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key not in ("eval.evals", "sweep.grid"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v if not isinstance(v, (list, dict)) else _label(v)
    return out




def reference_line(results_dir: str | Path | None) -> tuple[int | None, str]:
    """The figures' reference step and its label from the runs' configs (`analysis.reference_step`), the
    most common value where runs differ; the default (the paper's step 40) for configs without it."""
    from collections import Counter

    from dynamics.config.analysis import AnalysisConfig

    default = AnalysisConfig()
    configs = run_configs(results_dir) if results_dir is not None else {}
    seen = Counter()
    for cfg in configs.values():
        a = cfg.get("analysis") or {}
        seen[(a.get("reference_step", default.reference_step), a.get("reference_label", default.reference_label))] += 1
    if not seen:
        return default.reference_step, default.reference_label
    return seen.most_common(1)[0][0]


__all__ = ["analysis_frame", "run_groups", "run_configs", "run_table", "config_value", "experiment_dirs",
           "reference_line", "DEFAULT_BY"]
