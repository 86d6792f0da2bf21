"""Does batching pay on this machine? HFEngine.generate and HFEngine.score, batched versus one at a time.

    python benchmarks/generation.py                           # 8 main questions, 48 new tokens, embedded SmolLM2
    python benchmarks/generation.py --n 4 --max-new-tokens 32 --score-items 8
    python benchmarks/generation.py --model tiny:llama --dtype float32

Generation: N (default 8) of the 8 main questions of first_plot_questions.yaml (their first paraphrase,
with the entry's system prompt if any), sampled with the same SamplingParams (temperature, max_new_tokens,
seed) once as one call of N conversations (engine batch_size = N) and once as N calls of one conversation
(batch_size = 1). Reports answers/s and generated tokens/s (tokens up to EOS, as `Generation.num_tokens`).
The two modes sample different random streams, so their answers (and lengths) differ; both are reported.

Scoring: the scored sequences of the log-prob items (`dynamics.evals.logprob.load_items` +
`build_requests`), teacher-forced through HFEngine.score once in batches of --score-batch-size (the
evaluator's eval.batch_size) and once one sequence per call. Reports sequences/s and input
tokens/s, and the largest difference between the two modes' log-probabilities (padding must not change them).

One untimed warm-up call of each kind runs first. Prints one JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# importing _bench first puts this checkout on sys.path and sets the offline environment
from _bench import DEFAULT_DATA_DIR, finish, json_stdout, log, machine


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="embedded:smollm2")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    p.add_argument("--n", type=int, default=8, help="how many of the 8 main questions (1-8)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--score-items", type=int, default=None, help="first K log-prob items (default: all)")
    p.add_argument("--score-batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--skip-generation", action="store_true")
    p.add_argument("--skip-scoring", action="store_true")
    return p.parse_args(argv)


def bench_generation(engine, convs, params) -> dict:
    from dynamics.engines.base import SamplingParams

    engine.batch_size = 1
    engine.generate(convs[:1], SamplingParams(temperature=params.temperature, max_new_tokens=4, seed=params.seed))

    engine.batch_size = len(convs)
    t = time.perf_counter()
    batched = engine.generate(convs, params)
    t_batched = time.perf_counter() - t
    log(f"generate batched: {len(convs)} answers in {t_batched:.2f}s")

    engine.batch_size = 1
    t = time.perf_counter()
    single = [engine.generate([c], params)[0] for c in convs]
    t_single = time.perf_counter() - t
    log(f"generate one at a time: {len(convs)} answers in {t_single:.2f}s")

    def stats(gens, seconds):
        toks = sum(g[0].num_tokens for g in gens)
        return {"seconds": seconds, "answers": len(gens), "answers_per_second": len(gens) / seconds,
                "generated_tokens": toks, "tokens_per_second": toks / seconds,
                "finished": sum(g[0].finished for g in gens)}

    b, s = stats(batched, t_batched), stats(single, t_single)
    return {"batched": b, "one_at_a_time": s,
            "speedup_answers_per_second": b["answers_per_second"] / s["answers_per_second"],
            "speedup_tokens_per_second": b["tokens_per_second"] / s["tokens_per_second"] if s["tokens_per_second"] else None}


def bench_scoring(engine, requests, batch_size: int) -> dict:
    engine.batch_size = 1
    engine.score(requests[:1])

    engine.batch_size = batch_size
    t = time.perf_counter()
    batched = engine.score(requests)
    t_batched = time.perf_counter() - t
    log(f"score batched ({batch_size}): {len(requests)} sequences in {t_batched:.2f}s")

    engine.batch_size = 1
    t = time.perf_counter()
    single = [engine.score([r])[0] for r in requests]
    t_single = time.perf_counter() - t
    log(f"score one at a time: {len(requests)} sequences in {t_single:.2f}s")

    tokens = sum(len(r.input_ids) for r in requests)
    diff = max(abs(a - b) for x, y in zip(batched, single) for a, b in zip(x, y))

    def stats(seconds):
        return {"seconds": seconds, "sequences_per_second": len(requests) / seconds,
                "tokens_per_second": tokens / seconds}

    b, s = stats(t_batched), stats(t_single)
    return {"sequences": len(requests), "input_tokens": tokens, "batch_size": batch_size, "batched": b,
            "one_at_a_time": s, "speedup": b["sequences_per_second"] / s["sequences_per_second"],
            "max_abs_logprob_diff": diff}


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    facts = machine()
    from dynamics.engines.base import SamplingParams
    from dynamics.engines.hf import HFEngine

    t = time.perf_counter()
    engine = HFEngine.load(args.model, dtype=args.dtype)
    load_seconds = time.perf_counter() - t
    log(f"loaded {args.model} in {load_seconds:.1f}s; torch threads {torch.get_num_threads()}")
    result = {"benchmark": "generation", "model": args.model, "dtype": args.dtype, "load_seconds": load_seconds}

    if not args.skip_generation:
        from dynamics.evals.questions import main_questions

        questions = main_questions(args.data_dir / "evaluation" / "first_plot_questions.yaml")
        if not 1 <= args.n <= len(questions):
            raise SystemExit(f"--n must be 1..{len(questions)}")
        convs = [q.messages(q.paraphrases[0]) for q in questions[: args.n]]
        params = SamplingParams(temperature=args.temperature, top_p=1.0, max_new_tokens=args.max_new_tokens,
                                n=1, seed=args.seed)
        result["generation"] = {"n": args.n, "question_ids": [q.id for q in questions[: args.n]],
                                "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
                                "seed": args.seed, **bench_generation(engine, convs, params)}

    if not args.skip_scoring:
        from dynamics.data.registry import resolve
        from dynamics.evals.logprob import build_requests, load_items

        items = load_items(resolve("logprob_items", args.data_dir))
        items = items[: args.score_items] if args.score_items else items
        requests = [r for it in items for r in build_requests(engine.tokenizer, it).values()]
        result["scoring"] = {"items": len(items), **bench_scoring(engine, requests, args.score_batch_size)}

    return finish(result, facts, t_start)


if __name__ == "__main__":
    with json_stdout() as emit:
        emit(main())
