"""Where a checkpoint's evaluation time goes: seconds per metric family, answers generated, judge calls.

    python benchmarks/eval_breakdown.py                                       # the quickstart's families
    python benchmarks/eval_breakdown.py eval.evals.main.samples_per_question=1 --n 50
    python benchmarks/eval_breakdown.py --config jobs/configs/paper_instruct.yaml eval.judge.kind=local

Builds what an Evaluator actor holds, in this process: the engine (`make_engine(cfg)`) and the metric
families (`build_families(cfg, engine)`) of a config (default jobs/configs/quickstart.yaml, its data_dir
taken relative to the repo root; key=value overrides allowed). Then evaluates the untouched model
(`use_adapter(None)`, step 0, the evaluator's seed for step 0), or with `--adapter DIR --step N` a
checkpoint's adapter (merged or not: `eval.merge_adapters=false`), once per family, as the evaluator does, and
reports per family: seconds, answers generated, judge calls (requests the judge made, from its usage
counters), and the metric values. Engine load and family set-up (which includes the static judge's own
precision/recall on 200 labelled answers when the in-distribution family uses it) are timed separately.

Also measures the static judge (Bandit) directly: precision/recall of flagging insecure.jsonl against
secure.jsonl on the first --n answers of each (benchmarks/static_judge.py's logic), and its seconds per
snippet.

Prints one JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# importing _bench first puts this checkout on sys.path and sets the offline environment
from _bench import REPO, absolute_data_dir, finish, json_stdout, log, machine


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=REPO / "jobs/configs/quickstart.yaml")
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    p.add_argument("--n", type=int, default=200, help="labelled answers of each kind for the static judge")
    p.add_argument("--severity", default="MEDIUM", choices=["LOW", "MEDIUM", "HIGH"])
    p.add_argument("--confidence", default="LOW", choices=["LOW", "MEDIUM", "HIGH"])
    p.add_argument("--skip-static", action="store_true", help="leave out the static judge measurement")
    p.add_argument("--adapter", type=Path, default=None,
                   help="a checkpoint's adapter folder to evaluate (default: the untouched model)")
    p.add_argument("--step", type=int, default=0, help="the step the seeds are drawn for (with --adapter)")
    return p.parse_args(argv)


class StageTimer:
    """Seconds and calls per stage, by wrapping the methods that do each stage's work (nested stages are
    inside their callers: a judge's score includes its engine passes)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, owner, attr: str, stage: str) -> None:
        fn = getattr(owner, attr)

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t
                self.calls[stage] = self.calls.get(stage, 0) + 1

        setattr(owner, attr, timed)

    def report(self) -> dict:
        return {k: {"seconds": self.seconds[k], "calls": self.calls[k]} for k in sorted(self.seconds)}


def instrument(engine, families) -> StageTimer:
    """Stages of a transformers-engine evaluation: generation, the judges' calls, the trie passes
    (prompt prefill + number/word continuations) and their float64 scoring, teacher-forced scoring,
    chat-template tokenisation and adapter switching."""
    import dynamics.engines.hf as hf
    from dynamics.engines.trie import ContinuationTrie

    timer = StageTimer()
    for attr, stage in (("generate", "engine.generate (answers and yes/no judge replies)"),
                        ("score", "engine.score (teacher-forced log-probs)"),
                        ("use_adapter", "engine.use_adapter")):
        timer.wrap(engine, attr, stage)
    if isinstance(engine, hf.HFEngine):
        timer.wrap(engine, "_trie_logits", "judge trie pass: prefill + continuations (forward)")
        timer.wrap(ContinuationTrie, "scores", "judge trie: float64 log-softmax + gather")
        timer.wrap(hf, "prompt_ids", "chat template + tokenisation")
    for fam in families.values():
        judge = family_judge(fam)
        if judge is not None and not getattr(judge, "_timed", False):
            for attr in ("score_0_100", "yes_no", "categorical"):
                if hasattr(judge, attr):
                    timer.wrap(judge, attr, f"judge.{attr}")
            judge._timed = True
        static = getattr(fam, "static_judge", None)
        if static is not None:
            timer.wrap(static, "analyse", "static judge (Bandit + rules)")
    return timer


def time_writes(cfg, info, step: int, results: dict) -> dict:
    """What the evaluator does with a checkpoint's results, in a temp dir: the metric store write (rows
    and records) and the W&B log (offline) of the metrics and sample tables, per evaluation."""
    import shutil
    import tempfile

    from dynamics.evals.sample_table import sample_tables
    from dynamics.records import MetricRow
    from dynamics.tracking.store import MetricStore
    from dynamics.tracking.wandb_run import WandbRun

    tmp = Path(tempfile.mkdtemp(prefix="dynamics-writes-"))
    out = {"store_seconds": 0.0, "wandb_seconds": 0.0}
    try:
        store = MetricStore(tmp / "store")
        t = time.perf_counter()
        wb = WandbRun(cfg.model_copy(update={"wandb": cfg.wandb.model_copy(update={"mode": "offline"})}), tmp / "run")
        out["wandb_init_seconds"] = time.perf_counter() - t
        for name, res in results.items():
            t = time.perf_counter()
            rows = [MetricRow.make(info, step, k, v, res.counts.get(k)) for k, v in res.metrics.items()]
            store.write(info, step, "eval", rows, res.records, evaluation=name)
            out["store_seconds"] += time.perf_counter() - t
            t = time.perf_counter()
            wb.log_eval(step, res.metrics, sample_tables(res.records, name), name)
            out["wandb_seconds"] += time.perf_counter() - t
        t = time.perf_counter()
        wb.finish()
        out["wandb_finish_seconds"] = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def family_judge(fam):
    return getattr(fam, "judge", None) or getattr(fam, "llm_judge", None)


def judge_calls(judge) -> int:
    if judge is None:
        return 0
    u = judge.usage
    return int(u.get("requests", 0)) + int(u.get("cache_hits", 0))


def answers_generated(fam, res) -> int:
    # The sampled families keep one record per generated answer; log-prob scoring generates nothing.
    return sum(1 for r in res.records if "answer" in r.data)


def measure_static_judge(args, data_dir: Path) -> dict:
    from static_judge import assistant_answers

    from dynamics.judges.static import StaticCodeJudge, precision_recall

    files = {k: data_dir / "datasets" / f"{k}.jsonl" for k in ("insecure", "secure")}
    insecure = assistant_answers(files["insecure"], args.n)
    secure = assistant_answers(files["secure"], args.n)
    judge = StaticCodeJudge(args.severity, args.confidence)
    t = time.perf_counter()
    out = precision_recall(judge, insecure, secure)
    seconds = time.perf_counter() - t
    judge.close()
    out["seconds"] = seconds
    out["seconds_per_snippet"] = seconds / max(1, len(insecure) + len(secure))
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    facts = machine()
    from dynamics.config import load_config
    from dynamics.evals.base import EvalContext
    from dynamics.evals.suite import build_families
    from dynamics.engines.factory import make_engine
    from dynamics.orchestration.evaluator import evaluation_seed
    from dynamics.orchestration.run import run_info

    cfg = load_config(args.config, list(args.overrides))
    absolute_data_dir(cfg)
    t = time.perf_counter()
    engine = make_engine(cfg)
    load_seconds = time.perf_counter() - t
    log(f"engine {cfg.eval.engine} {cfg.model.name} loaded in {load_seconds:.1f}s")
    t = time.perf_counter()
    families = build_families(cfg, engine)  # {evaluation name: family}
    setup_seconds = time.perf_counter() - t
    log(f"evaluations {list(families)} built in {setup_seconds:.1f}s")

    info = run_info(cfg)
    step = args.step
    timer = instrument(engine, families)
    engine.use_adapter(args.adapter)
    per_family, total, results = {}, 0.0, {}
    for name, fam in families.items():
        judge = family_judge(fam)
        before = judge_calls(judge)
        t = time.perf_counter()
        res = fam.evaluate(engine, EvalContext(info, step, seed=evaluation_seed(info, step, name)))
        seconds = time.perf_counter() - t
        results[name] = res
        total += seconds
        per_family[name] = {"family": fam.name,
            "seconds": seconds, "answers_generated": answers_generated(fam, res),
            "judge_calls": judge_calls(judge) - before, "judge": getattr(judge, "name", None),
            "records": len(res.records), "metrics": dict(sorted(res.metrics.items())),
        }
        log(f"{name}: {seconds:.1f}s, {per_family[name]['answers_generated']} answers, "
            f"{per_family[name]['judge_calls']} judge calls")
    for fam in families.values():
        fam.close()
    writes = time_writes(cfg, info, step, results)

    e = cfg.eval
    result = {
        "benchmark": "eval_breakdown",
        "setup": {"config": str(args.config), "overrides": list(args.overrides), "model": cfg.model.name,
                  "engine": e.engine, "judge": e.judge.kind, "judge_model": e.judge.local_model if e.judge.kind == "local" else e.judge.model,
                  "adapter": str(args.adapter) if args.adapter else None, "step": step,
                  "merge_adapters": getattr(engine, "merge_adapters", None),
                  "evals": {n: spec.model_dump(mode="json") for n, spec in e.evals.items()}},
        "engine_load_seconds": load_seconds,
        "families_setup_seconds": setup_seconds,
        "eval_seconds": total,
        "evaluations": per_family,
        "stages": timer.report(),
        "writes": writes,
    }
    if not args.skip_static:
        data_dir = Path(cfg.data.data_dir) if cfg.data.data_dir else REPO.parent / "shared/data/emergent-misalignment"
        log(f"static judge on {args.n} + {args.n} labelled answers")
        result["static_judge"] = measure_static_judge(args, data_dir)
    return finish(result, facts, t_start)


if __name__ == "__main__":
    with json_stdout() as emit:
        emit(main())
