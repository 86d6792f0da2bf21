"""oneDNN linear layers with packed weights (`eval.onednn_linear`) against torch's own (MKL) path.

    python benchmarks/cpu_linear.py                  # kernels, then generation A/B on SmolLM2
    python benchmarks/cpu_linear.py --rounds 2 --skip-kernels

1. Kernels: every linear weight of a SmolLM2-135M-shaped model (30 layers of q, k, v, o, gate, up, down
   and the 49k-vocabulary projection, random values, so they stream from memory as in decoding) applied
   to M rows, with `F.linear` (MKL), MKL's own packed sgemm (`torch.ops.mkl._mkl_linear`) and oneDNN on
   weights packed for 16 rows; milliseconds per pass over the model for each M, and the largest
   difference from MKL's output on one layer.
2. Generation: two engines on the same model (`onednn_linear` off and on), the quickstart's two shapes
   (main: the 8 questions x 2 answers x 48 tokens at batch 16; in_distribution: 4 prompts x 96 tokens),
   alternating engines over rounds after a warm-up: seconds each, the ratio, and whether every sampled
   answer is the same text (it is compared for --seeds seeds).

Prints one JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import time

from _bench import DEFAULT_DATA_DIR, finish, json_stdout, log, machine


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="1,4,16,64,512", help="M values for the kernel pass")
    p.add_argument("--rounds", type=int, default=3, help="timed generation rounds per engine (after a warm-up)")
    p.add_argument("--seeds", type=int, default=3, help="seeds whose sampled answers are compared")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--skip-kernels", action="store_true")
    p.add_argument("--skip-generation", action="store_true")
    return p.parse_args(argv)


def bench_kernels(rows: list[int]) -> dict:
    import torch

    from dynamics.engines.cpu_linear import _ROWS_HINT

    g = torch.Generator().manual_seed(0)
    shapes = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)] * 30
    weights = [torch.randn(n, k, generator=g) / k ** 0.5 for n, k in shapes + [(49152, 576)]]
    onednn = [torch.ops.mkldnn._reorder_linear_weight(w, _ROWS_HINT) for w in weights]
    out = {}
    for m in rows:
        x = torch.randn(m, 1536, generator=g)
        xs = {k: x[:, :k].contiguous() for k in (576, 1536)}
        mkl_packed = [torch.ops.mkl._mkl_reorder_linear_weight(w, m) for w in weights]
        paths = {
            "mkl": lambda: [torch.nn.functional.linear(xs[w.shape[1]], w) for w in weights],
            "mkl_packed": lambda: [torch.ops.mkl._mkl_linear(xs[w.shape[1]], p, w, None, m)
                                   for w, p in zip(weights, mkl_packed)],
            "onednn_packed": lambda: [torch.ops.mkldnn._linear_pointwise(xs[w.shape[1]], p, None, "none", [], "")
                                      for w, p in zip(weights, onednn)],
        }
        ms = {}
        for name, f in paths.items():
            f()
            t = time.perf_counter()
            for _ in range(3):
                f()
            ms[name] = (time.perf_counter() - t) / 3 * 1e3
        w, p = weights[4], onednn[4]
        diff = (torch.ops.mkldnn._linear_pointwise(xs[576], p, None, "none", [], "")
                - torch.nn.functional.linear(xs[576], w)).abs().max().item()
        out[str(m)] = {"ms_per_model_pass": ms, "onednn_speedup": ms["mkl"] / ms["onednn_packed"],
                       "max_abs_diff_vs_mkl": diff}
        log(f"rows {m}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()))
    return out


def bench_generation(data_dir: str, rounds: int, seeds: int) -> dict:
    from pathlib import Path

    from dynamics.engines.base import SamplingParams
    from dynamics.engines.hf import HFEngine
    from dynamics.evals.questions import main_questions

    questions = main_questions(Path(data_dir) / "evaluation" / "first_plot_questions.yaml")
    convs = [q.messages(q.paraphrases[0]) for q in questions]
    engines = {"mkl": HFEngine.load("embedded:smollm2", batch_size=16, onednn_linear=False),
               "onednn": HFEngine.load("embedded:smollm2", batch_size=16, onednn_linear=True)}
    shapes = {"main_16x48": (convs, SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=48, n=2, seed=0)),
              "in_distribution_4x96": (convs[:4], SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=96, n=1, seed=0))}
    seconds = {e: {s: [] for s in shapes} for e in engines}
    for r in range(rounds + 1):  # round 0 warms up (packing, allocations) and is not counted
        order = list(engines) if r % 2 == 0 else list(engines)[::-1]
        for name in order:
            for shape, (cv, params) in shapes.items():
                t = time.perf_counter()
                engines[name].generate(cv, params)
                if r:
                    seconds[name][shape].append(time.perf_counter() - t)
        log(f"round {r}: " + ", ".join(f"{e} {sum(v[-1] for v in seconds[e].values()):.1f} s" for e in engines) if r else "warm-up done")
    same = True
    for seed in range(seeds):
        params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=48, n=2, seed=seed)
        texts = [[[g.text for g in row] for row in e.generate(convs, params)] for e in engines.values()]
        same = same and texts[0] == texts[1]
    total = {e: sum(sum(v) for v in seconds[e].values()) for e in engines}
    return {"rounds": rounds, "seconds": seconds, "total_seconds": total, "speedup": total["mkl"] / total["onednn"],
            "same_answers": same, "seeds_compared": seeds, "answers_per_seed": 16}


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    facts = machine()
    from dynamics.engines.cpu_linear import onednn_linear_available

    result = {"benchmark": "cpu_linear", "onednn_available": onednn_linear_available()}
    if not result["onednn_available"]:
        return finish(result, facts, t_start)
    if not args.skip_kernels:
        result["kernels"] = bench_kernels([int(r) for r in args.rows.split(",")])
    if not args.skip_generation:
        result["generation"] = bench_generation(args.data_dir, args.rounds, args.seeds)
    return finish(result, facts, t_start)


if __name__ == "__main__":
    with json_stdout() as emit:
        emit(main())
