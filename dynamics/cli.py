"""`dynamics run | sweep | evaluate | metrics | compare | report | dashboard | datasets`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _load(args):
    from dynamics.config import load_config

    return load_config(args.config, args.overrides)


def cmd_run(args) -> int:
    from dynamics.orchestration.run import run_experiment

    cfg = _load(args)
    args.stored_in, args.log_file = [cfg.experiment_dir], cfg.run_dir / "errors.log"
    print(f"run {cfg.run_id}: model {cfg.model.name}, dataset {cfg.data.dataset}, "
          f"{cfg.train.num_workers} worker(s), ZeRO-{cfg.train.zero_stage}, results in {cfg.experiment_dir}",
          flush=True)
    out = run_experiment(cfg)
    print(f"done: {out.run_id} trained in {out.train_seconds:.0f} s, {len(out.evaluated_steps)} checkpoints "
          f"evaluated {out.evaluated_steps}, total {out.total_seconds:.0f} s"
          + (f", {len(out.warnings)} warning(s) above" if out.warnings else ""), flush=True)
    _print_summary(cfg.experiment_dir, [out.run_id])
    if args.report:
        from dynamics.report import write_report

        from dynamics.report_html import write_html_report

        files = write_report(cfg.experiment_dir, cfg.experiment_dir / "figures")
        page = write_html_report(cfg.experiment_dir, cfg.experiment_dir / "figures" / "report.html")
        print(f"figures: {len(files)} PNG files and {page.name} in {cfg.experiment_dir / 'figures'}")
    return 0


def _print_summary(results_dir, runs: list[str] | None = None) -> None:
    """The closing summary table (dynamics.analysis.summary); a store it cannot read is named, not fatal."""
    from dynamics.analysis.summary import summary_table

    try:
        print(summary_table(results_dir, runs), flush=True)
    except Exception as e:  # the run is done and stored: a table it cannot draw is said, never an exit 1
        print(f"summary: {e}", flush=True)


def cmd_sweep(args) -> int:
    from dynamics.orchestration.sweep import run_sweep

    cfg = _load(args)
    args.stored_in, args.log_file = [cfg.experiment_dir], cfg.experiment_dir / "errors.log"
    run_sweep(cfg)
    _print_summary(cfg.experiment_dir)
    return 0


def cmd_evaluate(args) -> int:
    from dynamics.config import ConfigError
    from dynamics.orchestration import evaluate as ev

    if args.path and "=" in args.path and not Path(args.path).exists():  # `--checkpoint ... key=value`
        args.overrides, args.path = [args.path, *args.overrides], None
    names = [n.strip() for n in (args.evals or "").split(",") if n.strip()]
    if args.suite:  # a figure's evaluations from a file; the command line's overrides come after
        suite_names, suite_overrides = ev.load_suite(args.suite)
        names = names or suite_names
        args.overrides = [*suite_overrides, *args.overrides]
    if not names:
        raise ConfigError("--evals: name at least one evaluation (e.g. --evals main,deception_factual), "
                          "or give a --suite")
    steps = ev.parse_steps(args.steps)
    if args.checkpoint or args.base_model or (args.path and not ev.find_run_dirs(args.path)):
        if args.path and not args.checkpoint:
            checkpoints = [(s, str(p)) for s, p in ev.adapter_folder(args.path)]
            if not checkpoints:
                raise ConfigError(f"{args.path}: no runs and no PEFT adapter directories found")
        else:
            checkpoints = ev.parse_checkpoint_args(args.checkpoint or [])
        if not args.name:
            raise ConfigError("checkpoints trained elsewhere need --name (the experiment they are stored under)")
        targets = [ev.external_target(checkpoints, names, args.name, args.output, args.base_model, args.config,
                                      args.overrides)]
    else:
        targets = ev.targets_from_results(args.path, names, args.overrides)
    args.stored_in = sorted({t.cfg.experiment_dir for t in targets})
    args.log_file = targets[0].cfg.experiment_dir / "errors.log"
    out = ev.evaluate_targets(targets, names, steps)
    for experiment_dir in dict.fromkeys(t.cfg.experiment_dir for t in targets):
        _print_summary(experiment_dir, [t.cfg.run_id for t in targets if t.cfg.experiment_dir == experiment_dir])
    return 1 if out["errors"] else 0


def cmd_metrics(args) -> int:
    from dynamics.tracking.store import load_metrics

    if args.table:
        from dynamics.analysis.summary import summary_table

        print(summary_table(args.results_dir))
        return 0
    damaged: list = []
    df = load_metrics(args.results_dir, damaged)
    if args.metric:
        df = df[df["metric"].str.contains(args.metric, regex=False)]
    cols = ["run", "dataset", "seed", "step", "evaluation", "metric", "value", "n", "experiment", "model", "source"]
    try:
        df[cols].to_csv(sys.stdout, index=False)
        sys.stdout.flush()
    except BrokenPipeError:  # `dynamics metrics ... | head`: the reader stopped, which is fine
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return _report_damaged(damaged)


def _report_damaged(damaged: list) -> int:
    """Name every store file that could not be read (the rest was printed); 1 if any, so scripts notice."""
    for path, why in damaged:
        print(f"error: damaged store file {path} ({why}): left out; `dynamics evaluate` or a relaunch "
              "computes it again", file=sys.stderr)
    return 1 if damaged else 0


def cmd_report(args) -> int:
    from dynamics.report import write_report

    from dynamics.report_html import write_html_report

    out = Path(args.out) if args.out else Path(args.results_dir) / "figures"
    files = write_report(args.results_dir, out)
    for f in files:
        print(f)
    print(write_html_report(args.results_dir, out / "report.html"))
    return 0


def cmd_compare(args) -> int:
    from dynamics.analysis.compare import compare, write_compare

    try:
        result = compare(args.results_dir, by=args.by, alpha=args.alpha, max_resamples=args.resamples,
                         include_adapter=not args.no_adapter)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.results_dir) / "compare"
    write_compare(result, out)
    print("\n".join(result.summary()))
    print(f"tables: {out}/{{curves,tests,divergence,onsets}}.{{parquet,csv}}")
    return 0


def cmd_dashboard(args) -> int:
    from dynamics.tracking import dashboard as db

    if Path(args.source).exists():
        spec = db.spec_from_results(args.source)
    elif "/" in args.source:
        spec = db.spec_from_wandb(args.source, args.experiment)
    else:
        print(f"error: {args.source}: neither a results dir nor a W&B project (entity/project)", file=sys.stderr)
        return 2
    if args.entity:
        spec.entity = args.entity
    workspace = db.build_workspace(spec)
    print("\n".join(db.describe(workspace)))
    if args.dry_run:
        return 0
    workspace.save()  # needs W&B online and WANDB_API_KEY in the environment
    print(f"saved: {workspace.url}")
    return 0


def cmd_datasets(args) -> int:
    from dynamics.data.registry import QUICKSTART, REGISTRY, resolve

    for name, entry in REGISTRY.items():
        try:
            where = str(resolve(name, args.data_dir, download=False))
        except Exception:
            where = "(not available offline)"
        print(f"{name:32} {entry.url or '-':100} {entry.sha256 or 'unpinned'}  {where}")
    for name, path in QUICKSTART.items():
        print(f"{name:32} {'(shipped with dynamics)':100} {'-':64}  {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dynamics", description="Track training dynamics of LoRA finetunes on Ray.")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn, help_ in (("run", cmd_run, "train one run and evaluate every checkpoint"),
                            ("sweep", cmd_sweep, "run the config's sweep grid with Ray Tune")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("config")
        s.add_argument("overrides", nargs="*", help="key=value, e.g. train.max_steps=40 seed=1")
        if name == "run":
            s.add_argument("--report", action="store_true", help="write the figures when done")
        s.set_defaults(fn=fn)
    s = sub.add_parser("evaluate", help="add named evaluations to stored checkpoints (no retraining)")
    s.add_argument("path", nargs="?", help="a results, experiment or run dir; or a folder of PEFT adapters")
    s.add_argument("--evals", help="evaluation names, comma-separated (e.g. main,json,logprob)")
    s.add_argument("--suite", help="a suite file of evaluations and their settings (jobs/configs/evals/)")
    s.add_argument("--steps", help="only these steps: 0,10,20 or 10:50 (inclusive)")
    s.add_argument("--checkpoint", action="append", metavar="STEP=PATH_OR_ID",
                   help="a checkpoint trained elsewhere (an adapter dir, or a model id/dir); repeat")
    s.add_argument("--base-model", help="the base model of adapters trained elsewhere")
    s.add_argument("--name", help="experiment name for checkpoints trained elsewhere")
    s.add_argument("--output", default="results", help="results dir for checkpoints trained elsewhere")
    s.add_argument("--config", help="a config whose settings (judge, data dir, ...) checkpoints trained elsewhere use")
    s.add_argument("overrides", nargs="*", help="key=value, e.g. eval.evals.main.samples_per_question=4")
    s.set_defaults(fn=cmd_evaluate)
    s = sub.add_parser("metrics", help="print the metric table as CSV")
    s.add_argument("results_dir")
    s.add_argument("--metric", help="only metrics whose name contains this")
    s.add_argument("--table", action="store_true",
                   help="the headline metrics as a table per run (checkpoint x metric, 3 significant digits)")
    s.set_defaults(fn=cmd_metrics)
    s = sub.add_parser("report", help="write the dynamics figures (PNG) and one self-contained HTML page")
    s.add_argument("results_dir")
    s.add_argument("--out")
    s.set_defaults(fn=cmd_report)
    s = sub.add_parser("compare", help="when do groups of runs separate: statistics over seeds, per metric")
    s.add_argument("results_dir")
    s.add_argument("--by", default="data.dataset", help="a config key that differs between runs (default: dataset)")
    s.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate over steps (default 0.05)")
    s.add_argument("--resamples", type=int, default=9999,
                   help="relabellings drawn when there are more (default 9999; fewer are enumerated, exact)")
    s.add_argument("--no-adapter", action="store_true", help="skip the adapter trajectory (cos_final, PCA)")
    s.add_argument("--out", help="output dir (default: <results_dir>/compare)")
    s.set_defaults(fn=cmd_compare)
    s = sub.add_parser("dashboard", help="create the experiment's W&B workspace (online)")
    s.add_argument("source", help="a results dir, or a W&B project as entity/project")
    s.add_argument("--experiment", help="only this experiment's runs (a W&B project source)")
    s.add_argument("--entity", help="the W&B entity (default: the runs' wandb.entity)")
    s.add_argument("--dry-run", action="store_true", help="build and describe the view; save nothing")
    s.set_defaults(fn=cmd_dashboard)
    s = sub.add_parser("datasets", help="list the data registry and where each file resolves")
    s.add_argument("--data-dir")
    s.set_defaults(fn=cmd_datasets)
    args, extra = p.parse_known_args(argv)
    # `dynamics evaluate DIR --evals X key=value ...`: overrides after an option land here
    if extra and (args.cmd != "evaluate" or any("=" not in e or e.startswith("-") for e in extra)):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    from dynamics.config import ConfigError
    from dynamics.data.chat import DataError
    from dynamics.orchestration.runlock import RunLocked

    if args.cmd in ("run", "sweep", "evaluate"):
        from dynamics.orchestration.stopping import running_the_cli

        running_the_cli()
    try:
        return args.fn(args)
    except (ConfigError, DataError, RunLocked) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return _interrupted(args)
    except Exception as e:  # the OS refused a file (a full disk, ...): one line, the traceback to a log file
        return _os_error(args, e)
    finally:
        if args.cmd in ("run", "sweep", "evaluate"):  # Ctrl-C during Ray's shutdown at exit: no traceback
            from dynamics.orchestration.stopping import ignore_further_interrupts

            ignore_further_interrupts()


def _interrupted(args) -> int:
    from dynamics.orchestration import stopping

    stopping.ignore_further_interrupts()
    print(stopping.interrupted_line(args.cmd, getattr(args, "stored_in", [])), file=sys.stderr, flush=True)
    return stopping.INTERRUPTED_EXIT


def _os_error(args, e: Exception) -> int:
    from dynamics.orchestration import stopping

    err = stopping.os_error_of(e)
    if err is None or args.cmd not in ("run", "sweep", "evaluate"):
        raise e
    log = stopping.write_traceback(getattr(args, "log_file", None), e)
    where = (getattr(args, "stored_in", None) or [Path.cwd()])[0]
    if type(e) is RuntimeError and str(e).strip():  # dynamics' own failure ("run X: evaluation failed for ...")
        print(f"error: {str(e).strip().splitlines()[0]}", file=sys.stderr, flush=True)
    print(stopping.os_error_line(err, where, log), file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
