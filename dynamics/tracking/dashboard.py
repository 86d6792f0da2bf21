"""A W&B workspace for an experiment (wandb-workspaces): the view is built offline, saved online.

    dynamics dashboard results/cpu_sweep              # metrics, project and entity from the store and configs
    dynamics dashboard my-entity/dynamics --experiment paper_instruct   # from a W&B project (online)
    dynamics dashboard results/cpu_sweep --dry-run    # build and print the view's sections; save nothing

Sections: each headline evaluation metric against `eval/step`, runs grouped by dataset (the mean, the
min-max band), titled with `dynamics compare`'s divergence step where the store is at hand; the adapter
signals; the train loss against `train/step`; the evaluation lag (`pool/*` against `pool/checkpoint`); the
sample-answer tables (`eval/<name>/samples`). Saving needs W&B online (WANDB_API_KEY in the environment):
this box has no network, so `save` was never exercised here; the view's definition is checked offline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DATASET_KEY = "data.dataset"


@dataclass
class DashboardSpec:
    entity: str | None
    project: str
    experiment: str | None
    metrics: list[str]  # evaluation metric names as stored (`main/rate`), logged as `eval/<name>`
    sample_tables: list[str] = field(default_factory=list)  # evaluations with sample-answer tables
    titles: dict[str, str] = field(default_factory=dict)  # metric -> panel title (with its divergence step)


def spec_from_results(results_dir: str | Path, with_compare: bool = True) -> DashboardSpec:
    from dynamics.analysis.onset import headline_metrics
    from dynamics.analysis.runs import analysis_frame, run_configs, run_groups

    df = analysis_frame(results_dir, include_adapter=False)
    configs = list(run_configs(results_dir).values())
    wb = (configs[0].get("wandb") if configs else None) or {}
    metrics = headline_metrics(df)
    titles = {m: m for m in metrics}
    if with_compare and len(run_groups(df)) >= 2:
        from dynamics.analysis.compare import compare

        result = compare(results_dir, df=df, metrics=metrics, include_adapter=False)
        for m in metrics:
            step, p = result.divergence_step(m)
            titles[m] = f"{m}: separates from step {step} (p = {p:.3g})" if step is not None else f"{m}: no divergence"
    families = df[df["metric"].str.endswith("/rate") & (df["source"] == "eval")]["evaluation"].dropna().unique()
    return DashboardSpec(wb.get("entity"), wb.get("project", "dynamics"), df["experiment"].iloc[0], metrics,
                         sorted(families), titles)


def spec_from_wandb(path: str, experiment: str | None) -> DashboardSpec:
    """From the runs of a W&B project `entity/project` (online): their logged `eval/*` keys."""
    import wandb

    entity, _, project = path.partition("/")
    filters = {"config.name": experiment} if experiment else {}
    keys: set[str] = set()
    for run in wandb.Api().runs(path, filters=filters):
        keys |= {k for k in run.summary.keys() if k.startswith("eval/")}
    metrics = sorted(k[len("eval/"):] for k in keys if not k.endswith(("_ci_low", "_ci_high", "_seconds", "/samples"))
                     and k != "eval/step")
    tables = sorted(k[len("eval/"):-len("/samples")] for k in keys if k.endswith("/samples"))
    return DashboardSpec(entity, project, experiment, metrics, tables, {m: m for m in metrics})


def build_workspace(spec: DashboardSpec):
    """The wandb_workspaces Workspace of `spec` (no network)."""
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    def curve(metric: str, title: str, x: str = "eval/step", prefix: str = "eval/") -> "wr.LinePlot":
        return wr.LinePlot(title=title, x=x, y=[f"{prefix}{metric}"], groupby_aggfunc="mean",
                           groupby_rangefunc="minmax")

    behaviour = [m for m in spec.metrics if not m.startswith("adapter/")]
    adapter = [m for m in spec.metrics if m.startswith("adapter/")]
    sections = [ws.Section(name="When do the runs diverge (mean over seeds, min-max)", is_open=True,
                           panels=[curve(m, spec.titles.get(m, m)) for m in behaviour])]
    if adapter:
        sections.append(ws.Section(name="Adapter signals", is_open=True,
                                   panels=[curve(m, spec.titles.get(m, m)) for m in adapter]))
    sections += [
        ws.Section(name="Training", is_open=True, panels=[
            wr.LinePlot(title="train/loss", x="train/step", y=["train/loss"], groupby_aggfunc="mean",
                        groupby_rangefunc="minmax", smoothing_type="average", smoothing_factor=10)]),
        ws.Section(name="Evaluation lag", panels=[
            wr.LinePlot(title="checkpoints queued and steps behind", x="pool/checkpoint",
                        y=["pool/lag_steps", "pool/queued"])]),
        ws.Section(name="Sample answers (misaligned first)",
                   panels=[wr.WeavePanelSummaryTable(table_name=f"eval/{name}/samples") for name in spec.sample_tables]),
    ]
    # The experiment's runs by their names (`<experiment>-<dataset>-s<seed>`): a filter on the config key
    # `name` would not do, wandb-workspaces reads `name` as the run id.
    query = f"^{re.escape(spec.experiment)}-" if spec.experiment else ""
    return ws.Workspace(entity=spec.entity or "", project=spec.project,
                        name=f"dynamics: {spec.experiment or spec.project}", sections=sections,
                        runset_settings=ws.RunsetSettings(groupby=[ws.Config(DATASET_KEY)], query=query,
                                                          regex_query=bool(query)))


def describe(workspace) -> list[str]:
    lines = [f"workspace {workspace.name!r} in {workspace.entity or '<default entity>'}/{workspace.project}"]
    for s in workspace.sections:
        names = [getattr(p, "title", None) or getattr(p, "table_name", type(p).__name__) for p in s.panels]
        lines.append(f"  {s.name}: {len(names)} panel(s)" + (f": {', '.join(names[:6])}" if names else ""))
        lines[-1] += " ..." if len(names) > 6 else ""
    return lines


__all__ = ["DashboardSpec", "spec_from_results", "spec_from_wandb", "build_workspace", "describe"]
