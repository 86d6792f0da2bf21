"""The GPU figures for the README in one JSON line: training tokens/s and MFU, and the vLLM evaluator's
answers/s and judge calls/s per checkpoint at the paper's settings.

    python benchmarks/gpu_throughput.py                       # on a GPU machine (H100/H200)
    python benchmarks/gpu_throughput.py --train-args "--size 14B" model.name=/models/qwen2.5-coder-32b
    python benchmarks/gpu_throughput.py --cpu-smoke           # the plumbing on CPU: tiny sizes, minutes

Two measurements, each in its own process so the first frees the GPU before the second loads vLLM:
  train  benchmarks/gpu_zero3_qwen.py (ZeRO-3 LoRA on the real Qwen2.5-Coder architecture, the paper's
         micro-batch 2 x 2048; its docstring defines `mfu`): tokens_per_s, mfu, hfu, step seconds.
  eval   benchmarks/eval_breakdown.py on jobs/configs/paper_instruct.yaml (vLLM engine; main: 8 questions
         x 100 answers x 600 tokens; in_distribution: 100 prompts x 1000 tokens; log-prob items) with a
         local judge served by the same vLLM engine (`eval.judge.kind=local`, the base model: no API key
         on a benchmark box) on one GPU (`eval.tensor_parallel_size=1`); key=value overrides are passed
         on (e.g. `model.name=` a local copy of the weights, since the GPU box has no network).
         Reports per evaluation and in total: seconds per checkpoint, answers/s, judge calls/s.

Not run on the 2-core development box (no GPU there); `--cpu-smoke` runs both parts at toy sizes with
the transformers engine to check that the JSON is produced.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time

from _bench import REPO, finish, json_stdout, log, machine

PAPER_EVAL = ["eval.judge.kind=local", "eval.judge.local_model=self", "eval.tensor_parallel_size=1",
              "eval.num_gpus=1", "eval.resources={}"]
SMOKE_EVAL = ["eval.engine=transformers", "eval.num_gpus=0", "model.name=embedded:smollm2", "model.dtype=float32",
              "eval.evals.main.samples_per_question=1", "eval.evals.main.max_new_tokens=4",
              "eval.evals.main.batch_size=8", "eval.evals.in_distribution.n_prompts=1",
              "eval.evals.in_distribution.max_new_tokens=4", "eval.evals.in_distribution.batch_size=1",
              "eval.judge.min_number_mass=0.0", "data.data_dir=../shared/data/emergent-misalignment"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="key=value overrides for the evaluation config")
    p.add_argument("--config", default=str(REPO / "jobs/configs/paper_instruct.yaml"))
    p.add_argument("--train-args", default="", help="extra flags for gpu_zero3_qwen.py, one string")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--cpu-smoke", action="store_true")
    return p.parse_args(argv)


def json_line_of(cmd: list[str]) -> dict:
    """Run a benchmark script; its stderr passes through, its one stdout line is the result."""
    log("$ " + shlex.join(cmd))
    out = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def training(args) -> dict:
    cmd = [sys.executable, "benchmarks/gpu_zero3_qwen.py", *shlex.split(args.train_args)]
    r = json_line_of(cmd + (["--cpu-smoke"] if args.cpu_smoke else []))
    keep = ("device", "model", "batch", "seq", "tokens_per_s", "mfu", "hfu", "step_s", "achieved_tflops", "peak_memory_gib")
    return {k: r[k] for k in keep if k in r} | {"raw": r}


def evaluation(args) -> dict:
    overrides = (SMOKE_EVAL if args.cpu_smoke else PAPER_EVAL) + list(args.overrides)
    r = json_line_of([sys.executable, "benchmarks/eval_breakdown.py", "--config", args.config, "--skip-static", *overrides])
    per = {}
    for name, ev in r["evaluations"].items():
        s = ev["seconds"]
        per[name] = {"seconds": s, "answers": ev["answers_generated"], "judge_calls": ev["judge_calls"],
                     "answers_per_s": ev["answers_generated"] / s if s else None,
                     "judge_calls_per_s": ev["judge_calls"] / s if s else None}
    total = r["eval_seconds"]
    answers = sum(v["answers"] for v in per.values())
    calls = sum(v["judge_calls"] for v in per.values())
    return {"seconds_per_checkpoint": total, "answers_per_s": answers / total if total else None,
            "judge_calls_per_s": calls / total if total else None, "answers": answers, "judge_calls": calls,
            "engine_load_seconds": r["engine_load_seconds"], "evaluations": per, "overrides": overrides}


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start, facts = time.perf_counter(), machine()
    result = {"benchmark": "gpu_throughput", "cpu_smoke": args.cpu_smoke}
    if not args.skip_train:
        result["train"] = training(args)
    if not args.skip_eval:
        result["eval"] = evaluation(args)
    return finish(result, facts, t_start)


if __name__ == "__main__":
    with json_stdout() as emit:
        emit(main())
