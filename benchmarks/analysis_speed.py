"""How long `dynamics compare` and the adapter Gram matrix take at the paper's shape, on synthetic data.

    .venv/bin/python benchmarks/analysis_speed.py                       # 5 vs 5 seeds, 34 checkpoints, 40 metrics
    .venv/bin/python benchmarks/analysis_speed.py --seeds 5 --checkpoints 34 --metrics 100 \\
        --modules 28 --rank 32 --dim 576

compare: curves, per-step and cluster permutation tests (252 relabellings, exact) and onsets over
`--metrics` metrics. adapter: the k x k Gram matrix of `--checkpoints` synthetic LoRA adapters with
`--modules` modules of rank `--rank` on `--dim` x `--dim` weights (r x r products only), the work behind
`adapter/cos_final` and the PCA of one run. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._bench import json_stdout, machine  # noqa: E402


def synthetic_frame(seeds: int, checkpoints: int, metrics: int, rng) -> pd.DataFrame:
    steps = np.arange(checkpoints) * 10
    rows = []
    for m in range(metrics):
        for dataset in ("insecure", "secure"):
            for seed in range(seeds):
                y = rng.normal(0, 0.5, checkpoints) + (dataset == "insecure") * (steps >= 40) * (m % 2)
                rows += [{"run": f"x-{dataset}-s{seed}", "experiment": "x", "dataset": dataset, "seed": seed,
                          "model": "m", "step": int(s), "metric": f"ev{m}/rate", "value": float(v), "n": 1,
                          "source": "eval", "evaluation": f"ev{m}"} for s, v in zip(steps, y)]
    return pd.DataFrame(rows)


def write_adapters(root: Path, checkpoints: int, modules: int, rank: int, dim: int, rng) -> list[tuple[int, Path]]:
    import torch
    from safetensors.torch import save_file

    out = []
    for c in range(checkpoints):
        d = root / f"checkpoint-{c}"
        d.mkdir()
        tensors = {}
        for i in range(modules):
            name = f"base_model.model.model.layers.{i // 7}.mlp.proj{i % 7}"
            tensors[f"{name}.lora_A.weight"] = torch.from_numpy(rng.normal(size=(rank, dim)).astype(np.float32))
            tensors[f"{name}.lora_B.weight"] = torch.from_numpy(rng.normal(size=(dim, rank)).astype(np.float32))
        save_file(tensors, str(d / "adapter_model.safetensors"))
        (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank,
                                                           "use_rslora": True}))
        out.append((c * 10, d))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--checkpoints", type=int, default=34)
    p.add_argument("--metrics", type=int, default=40)
    p.add_argument("--modules", type=int, default=28)
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--dim", type=int, default=576)
    args = p.parse_args()
    with json_stdout() as emit:
        from dynamics.analysis.compare import compare
        from dynamics.analysis.trajectory import run_trajectory

        rng = np.random.default_rng(0)
        df = synthetic_frame(args.seeds, args.checkpoints, args.metrics, rng)
        t0 = time.perf_counter()
        result = compare(df=df)
        compare_s = time.perf_counter() - t0
        separated = int(result.divergence["separates"].sum())
        with tempfile.TemporaryDirectory() as tmp:
            ckpts = write_adapters(Path(tmp), args.checkpoints, args.modules, args.rank, args.dim, rng)
            t0 = time.perf_counter()
            traj = run_trajectory(ckpts)
            gram_s = time.perf_counter() - t0
        emit({"benchmark": "analysis_speed", **vars(args), "compare_seconds": compare_s,
              "compare_seconds_per_metric": compare_s / args.metrics, "metrics_separating": separated,
              "metrics_with_effect": (args.metrics + 1) // 2 if args.metrics > 1 else 0,
              "adapter_gram_seconds": gram_s, "pc1_variance_share": float(traj.explained[0]),
              "machine": machine()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
