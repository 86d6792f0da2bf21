"""dynamics' transformers engine next to lm-evaluation-harness on the same log-likelihood requests.

    pip install -e '.[bench]'          # lm-eval 0.4.13 (not needed by the package or CI)
    python benchmarks/lm_eval_side_by_side.py                      # the quickstart's log-prob requests
    python benchmarks/lm_eval_side_by_side.py --repeat 4 --batch-size 8 --model tiny:llama

The requests are the log-prob family's scored spans of a config (default jobs/configs/quickstart.yaml: the
paper's 8 multiple-choice and 8 pivotal-token items, rendered with the model's chat template), each as a
(context, continuation) pair of strings. lm-eval's `HFLM.loglikelihood` tokenises and scores them; the
same pairs, tokenised as lm-eval does (`HFLM._encode_pair`, so both score identical token ids), go to
`HFEngine.score`. Both use one loaded model object (same weights, dtype, threads), the same batch size,
and run in this process, each once to warm up and then `--trials` times, alternating. Reports requests/s
for each, the ratio (dynamics / lm-eval), and the largest absolute difference in log-probability.

lm-eval runs twice: as it ships (its log-softmax in the model's dtype, float32) and with
`softmax_dtype="float64"`, the precision dynamics uses. A float32 log-softmax over a 49k vocabulary is off
by up to ~2e-4 on this CPU's vectorised exp, so the agreement that measures the two implementations (same
logits, same tokens) is the float64 one; the float32 figure is reported beside it. The speed ratio is
against lm-eval as it ships (its faster setting).

Prints one JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _bench import REPO, absolute_data_dir, finish, json_stdout, log, machine


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=REPO / "jobs/configs/quickstart.yaml")
    p.add_argument("--model", default=None, help="model name (default: the config's)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeat", type=int, default=1, help="score the request list this many times per trial")
    p.add_argument("--trials", type=int, default=3)
    return p.parse_args(argv)


def string_pairs(cfg, tokenizer) -> list[tuple[str, str]]:
    """(context, continuation) text of every scored span of the config's log-prob items."""
    from dynamics.data.registry import resolve
    from dynamics.evals.logprob import build_requests, load_items

    items = load_items(resolve("logprob_items", cfg.data.data_dir))
    pairs = []
    for it in items:
        for req in build_requests(tokenizer, it).values():
            for s, e in req.spans:
                ids = list(req.input_ids)
                pairs.append((tokenizer.decode(ids[:s]), tokenizer.decode(ids[s:e])))
    return pairs


def run_lm_eval(lm, pairs) -> list[float]:
    from lm_eval.api.instance import Instance

    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(pairs)]
    return [lp for lp, _greedy in lm.loglikelihood(reqs, disable_tqdm=True)]


def run_dynamics(engine, token_pairs) -> list[float]:
    from dynamics.tokens import ScoreRequest

    reqs = [ScoreRequest(tuple(c + x), ((len(c), len(c) + len(x)),)) for c, x in token_pairs]
    return [s[0] for s in engine.score(reqs)]


def timed(fn, *args) -> tuple[float, list[float]]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    facts = machine()
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from dynamics.config import load_config
    from dynamics.engines.hf import HFEngine

    cfg = load_config(args.config, [])
    absolute_data_dir(cfg)
    model_name = args.model or cfg.model.name
    engine = HFEngine.load(model_name, cfg.model.dtype, batch_size=args.batch_size)
    lm = HFLM(pretrained=engine.base, tokenizer=engine.tokenizer, batch_size=args.batch_size)
    lm64 = HFLM(pretrained=engine.base, tokenizer=engine.tokenizer, batch_size=args.batch_size,
                softmax_dtype="float64")
    pairs = string_pairs(cfg, engine.tokenizer) * args.repeat
    token_pairs = [lm._encode_pair(c, x) for c, x in pairs]  # lm-eval's own tokenisation, for both
    log(f"{len(pairs)} requests, {sum(len(c) + len(x) for c, x in token_pairs)} tokens, batch {args.batch_size}")
    run_lm_eval(lm, pairs[: args.batch_size])  # warm-up
    run_lm_eval(lm64, pairs[: args.batch_size])
    run_dynamics(engine, token_pairs[: args.batch_size])
    t_lm, t_lm64, t_dyn = [], [], []
    for trial in range(args.trials):
        s, ref = timed(run_lm_eval, lm, pairs)
        t_lm.append(s)
        s, ours = timed(run_dynamics, engine, token_pairs)
        t_dyn.append(s)
        s, ref64 = timed(run_lm_eval, lm64, pairs)
        t_lm64.append(s)
        log(f"trial {trial}: lm-eval {t_lm[-1]:.2f}s (float64 softmax {t_lm64[-1]:.2f}s), dynamics {t_dyn[-1]:.2f}s")
    diff = max(abs(a - b) for a, b in zip(ours, ref64))
    diff32 = max(abs(a - b) for a, b in zip(ours, ref))
    lm_rps, dyn_rps = len(pairs) / statistics.median(t_lm), len(pairs) / statistics.median(t_dyn)
    result = {
        "benchmark": "lm_eval_side_by_side",
        "setup": {"model": model_name, "dtype": cfg.model.dtype, "requests": len(pairs),
                  "tokens": sum(len(c) + len(x) for c, x in token_pairs), "batch_size": args.batch_size,
                  "trials": args.trials, "lm_eval": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "0.4.13"},
        "lm_eval_seconds": t_lm, "lm_eval_float64_softmax_seconds": t_lm64, "dynamics_seconds": t_dyn,
        "lm_eval_requests_per_s": lm_rps, "dynamics_requests_per_s": dyn_rps,
        "lm_eval_float64_softmax_requests_per_s": len(pairs) / statistics.median(t_lm64),
        "speed_ratio_dynamics_over_lm_eval": dyn_rps / lm_rps,
        # same logits, both log-softmaxes in float64: the two implementations' agreement
        "max_abs_logprob_diff": diff,
        "agree_to_1e-4": diff <= 1e-4,
        # against lm-eval as it ships (float32 log-softmax)
        "max_abs_logprob_diff_lm_eval_float32_softmax": diff32,
    }
    return finish(result, facts, t_start)


if __name__ == "__main__":
    with json_stdout() as emit:
        emit(main())
