"""The quickstart's evaluation per checkpoint on the vLLM engine against the transformers engine, in one run.

    python benchmarks/vllm_side_by_side.py                         # jobs/configs/quickstart.yaml, CPU
    python benchmarks/vllm_side_by_side.py --adapters A B          # these checkpoints' adapters
    python benchmarks/vllm_side_by_side.py eval.evals.main.samples_per_question=1   # key=value overrides

Both engines in this process, one after the other (each has the machine to itself; the first is closed
before the second loads), on the same checkpoints: the untouched model (step 0) and each adapter. Default
adapters: two seeded random rsLoRA r=32 adapters on the quickstart's modules (the shape of the
quickstart's checkpoints; training those takes the whole quickstart), saved to a temp dir. Per engine:
load seconds, and per checkpoint the seconds of every evaluation (family) as the evaluator runs it
(`use_adapter`, then each family with the evaluator's seed). The local judge reads the top-20 next tokens
on both engines (`eval.judge.local_number_mode: top_tokens`: what vLLM serves).

Values: the log-prob family is deterministic, its metrics are compared (max |difference|, METRICS.md
1e-3); the sampled families draw from different random streams on the two engines (vLLM's sampler is not
torch's), so their values are listed side by side, not required equal (benchmarks/gpu_backend_agreement.py
compares the judge on the same answers). Prints one JSON line; progress on stderr.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from _bench import REPO, absolute_data_dir, finish, json_stdout, log, machine


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=REPO / "jobs/configs/quickstart.yaml")
    p.add_argument("overrides", nargs="*", help="key=value config overrides (both engines)")
    p.add_argument("--adapters", type=Path, nargs="*", default=None, help="checkpoint adapter folders")
    p.add_argument("--engines", nargs="+", default=["transformers", "vllm"],
                   help="transformers, vllm (its CPU default: merged adapters), vllm:lora (vLLM's LoRA kernels), "
                        "vllm:merged")
    p.add_argument("--n-adapters", type=int, default=2, help="random adapters made when --adapters is not given")
    p.add_argument("--no-base", dest="base", action="store_false", help="leave out the untouched model")
    return p.parse_args(argv)


def random_adapters(cfg, out: Path, n: int = 2) -> list[Path]:
    import importlib.util

    from dynamics.models import load_model

    spec = importlib.util.spec_from_file_location("agreement", REPO / "benchmarks" / "gpu_backend_agreement.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = load_model(cfg.model.name, "float32", cfg.model.cache_dir)
    paths = []
    for seed in range(1, n + 1):
        path = out / f"adapter{seed}"
        model = mod.random_lora_adapter(model, path, r=cfg.lora.r, seed=seed, targets=tuple(cfg.lora.target_modules))
        paths.append(path)
    return paths


def run_engine(cfg, checkpoints) -> dict:
    from dynamics.engines.factory import make_engine
    from dynamics.evals.base import EvalContext
    from dynamics.evals.suite import build_families
    from dynamics.orchestration.evaluator import evaluation_seed
    from dynamics.orchestration.run import run_info
    from dynamics.threads import match_cpu_share

    threads = match_cpu_share(cfg.eval.num_cpus, cfg.eval.threads)
    t = time.perf_counter()
    engine = make_engine(cfg, threads=threads)
    out = {"load_seconds": time.perf_counter() - t, "threads": threads, "checkpoints": {}}
    log(f"{cfg.eval.engine}: loaded in {out['load_seconds']:.1f}s")
    families = build_families(cfg, engine)
    info = run_info(cfg)
    for step, adapter in checkpoints:
        t0 = time.perf_counter()
        engine.use_adapter(adapter)
        row = {"use_adapter_seconds": time.perf_counter() - t0, "seconds": {}, "metrics": {}}
        for name, fam in families.items():
            t = time.perf_counter()
            res = fam.evaluate(engine, EvalContext(info, step, seed=evaluation_seed(info, step, name)))
            row["seconds"][name] = time.perf_counter() - t
            row["metrics"][name] = dict(res.metrics)
        row["total_seconds"] = time.perf_counter() - t0
        log(f"{cfg.eval.engine}: step {step} {row['total_seconds']:.1f}s {row['seconds']}")
        out["checkpoints"][step] = row
    if hasattr(engine, "weight_loads"):
        out["weight_loads"] = engine.weight_loads
    for fam in families.values():
        close = getattr(fam, "close", None)
        if close:
            close()
    engine.close()
    del engine, families
    gc.collect()
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    t_start = time.perf_counter()
    facts = machine()
    from dynamics.config import load_config

    overrides = ["eval.judge.local_number_mode=top_tokens", *args.overrides]
    base_cfg = load_config(args.config, overrides)
    absolute_data_dir(base_cfg)
    from dynamics.models import prepare_model

    prepare_model(base_cfg.model.name, base_cfg.model.cache_dir)
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        adapters = args.adapters if args.adapters is not None else random_adapters(base_cfg, Path(tmp), args.n_adapters)
        checkpoints = ([(0, None)] if args.base else []) + [(10 * (i + 1), str(a)) for i, a in enumerate(adapters)]
        results = {}
        for engine in args.engines:
            kind, _, lora = engine.partition(":")
            ev = base_cfg.eval.model_copy(update={"engine": kind})
            if lora:
                ev = ev.model_copy(update={"vllm": ev.vllm.model_copy(update={"lora": lora})})
            results[engine] = run_engine(base_cfg.model_copy(update={"eval": ev}), checkpoints)
    out = {"config": str(args.config), "overrides": overrides, "engines": results,
           "checkpoints": [s for s, _ in checkpoints]}
    if {"transformers", "vllm"} <= set(results):
        hf, vl = results["transformers"], results["vllm"]
        out["seconds_per_checkpoint"] = {
            e: {s: r["checkpoints"][s]["total_seconds"] for s, _ in checkpoints} for e, r in results.items()}
        out["speedup_per_checkpoint"] = {s: hf["checkpoints"][s]["total_seconds"] / vl["checkpoints"][s]["total_seconds"]
                                         for s, _ in checkpoints}
        out["speedup_per_family"] = {
            name: sum(hf["checkpoints"][s]["seconds"][name] for s, _ in checkpoints)
            / max(1e-9, sum(vl["checkpoints"][s]["seconds"][name] for s, _ in checkpoints))
            for name in hf["checkpoints"][checkpoints[0][0]]["seconds"]}
        diffs = [abs(hf["checkpoints"][s]["metrics"][n][k] - v)
                 for s, _ in checkpoints for n, m in vl["checkpoints"][s]["metrics"].items()
                 if base_cfg.eval.evals[n].family == "logprob" for k, v in m.items()
                 if v is not None and hf["checkpoints"][s]["metrics"][n].get(k) is not None]
        out["logprob_max_abs_diff"] = max(diffs) if diffs else None
    return finish(out, facts, t_start)


if __name__ == "__main__":
    with json_stdout() as emit:
        emit(main())
