"""What a backfill costs: `dynamics evaluate` adding named evaluations to a finished run's checkpoints.

    python benchmarks/evaluate_backfill.py results/quickstart --evals json,deception_factual \
        eval.evals.json.samples_per_question=2 eval.evals.json.max_new_tokens=48 ...

Runs `evaluate_targets` (what the CLI runs: its own local Ray cluster, the evaluator pool, the trackers,
W&B as the run's config says) on a copy of the results dir (so it can be run again; --in-place to use the
original), and reports: the wall time, Ray and evaluator start-up, the (step, evaluation) results
written, and per evaluation the seconds each checkpoint took (from `<name>/eval_seconds` in the store).

Prints one JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import finish, json_stdout, log, machine, summary  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="an experiment dir (results/<experiment>) or a run dir")
    p.add_argument("--evals", required=True)
    p.add_argument("--in-place", action="store_true", help="evaluate the results dir itself, not a copy")
    p.add_argument("overrides", nargs="*")
    args = p.parse_intermixed_args(argv)
    facts = machine()
    t0 = time.perf_counter()
    log(f"backfill of {args.evals} on {args.results}")
    from dynamics.orchestration.evaluate import evaluate_targets, targets_from_results
    from dynamics.tracking.store import MetricStore

    src = Path(args.results).resolve()
    work = None
    if not args.in_place:
        work = Path(tempfile.mkdtemp(prefix="dynamics-backfill-"))
        target_dir = work / src.parent.name if (src / "config.yaml").is_file() else work / src.name
        shutil.copytree(src.parent.parent if (src / "config.yaml").is_file() else src, target_dir,
                        ignore=shutil.ignore_patterns("wandb"))
        src = target_dir
    names = [n for n in args.evals.split(",") if n]
    targets = targets_from_results(src, names, args.overrides)
    out = evaluate_targets(targets, names)
    per_eval = {}
    for t in targets:
        df = MetricStore(t.cfg.experiment_dir).metrics(t.cfg.run_id)
        for name in names:
            rows = df[df.metric == f"{name}/eval_seconds"]
            per_eval.setdefault(name, []).extend(float(v) for v in rows.value)
    result = {
        "benchmark": "evaluate_backfill", "results": str(args.results), "evals": names, "overrides": args.overrides,
        "runs": len(targets), "written": sum(len(w) for w in out["written"].values()), "errors": out["errors"],
        "evaluate_seconds": out["seconds"],
        "seconds_per_checkpoint": {n: summary(v) for n, v in per_eval.items()},
    }
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return finish(result, facts, t0)


if __name__ == "__main__":
    with json_stdout() as emit:
        emit(main())
