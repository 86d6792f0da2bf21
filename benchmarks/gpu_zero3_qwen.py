"""How fast does one GPU LoRA-finetune Qwen2.5-Coder under DeepSpeed ZeRO-3? One JSON line of results.

    python benchmarks/gpu_zero3_qwen.py --cpu-smoke          # 10-90 s on 2 CPU cores: tiny model, gloo
    python benchmarks/gpu_zero3_qwen.py                      # on a GPU: largest Qwen2.5-Coder size that fits
    python benchmarks/gpu_zero3_qwen.py --size 14B --steps 5

The model is randomly initialised with the *real* architecture of a Qwen2.5-Coder family member (the
configs below are the published `config.json` values), so no download and no network is needed. It is
built the way the training loop builds it: partitioned by ZeRO-3 while it is constructed (transformers'
`HfDeepSpeedConfig` makes `from_config` run under `deepspeed.zero.Init`), bf16, gradient checkpointing,
rank-stabilised LoRA r=32 / alpha=64 on the 7 projections (peft), torch AdamW through
`deepspeed.initialize`. It then runs optimizer steps on random tokens (default batch 2 x seq 2048, the
paper's per-device micro-batch) in a single process (`deepspeed.init_distributed` over a 1-rank env).

FLOPs accounting (what `mfu` means). With LoRA the base weights are frozen, so per token:
  * base matmuls: forward 2*N + backward w.r.t. activations 2*N = 4*N. The weight-gradient matmul (the
    third 2*N of the usual 6*N) is never computed for a frozen weight.
  * LoRA matmuls: full 6*N_lora (forward, activation gradient and weight gradient).
  * attention scores (QK^T and AV, no weights): 12*L*S*d_attn per token for full attention, of which a
    causal kernel does half: 6*L*S*d_attn is what we count.
  N = non-embedding matmul parameters: every Linear in the decoder plus the LM head (vocab x hidden, once,
  also where it is tied to the embedding); the embedding lookup does no FLOPs.
  `mfu` = (4*N + 6*N_lora + 6*L*S*d_attn) * tokens/s / peak. `hfu` also counts what gradient
  checkpointing recomputes (one more forward of the decoder layers, 2*N_layers + 2*N_lora + 2*L*S*d_attn),
  and `mfu_6n` is the conventional full-finetuning 6*N_total figure, shown only for comparison: it
  overstates LoRA's work by the 2*N weight-gradient FLOPs that are not done.
  Peak = the GPU's dense bf16 tensor peak (H100 SXM and H200: 989 TFLOP/s; `--peak-tflops` overrides).

Memory: a single GPU holds the whole bf16 model here (ZeRO-3 over 1 rank partitions nothing away), so
the 32B model (~61 GiB of weights, ~8 GiB of fp32 logits for 2 x 2048 x 152064) needs an H200; on an
80 GB H100 `--size auto` picks 14B. In the real 8-GPU run each rank holds 1/8 of the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import sys
import time

# Published config.json values of the Qwen2.5-Coder family (Qwen/Qwen2.5-Coder-<size>-Instruct; the base
# models share them). rope_theta is 1e6 and rms_norm_eps 1e-6 for all of them.
SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "intermediate_size", "vocab_size", "tie_word_embeddings")
QWEN25_CODER = {size: dict(zip(SHAPE_KEYS, shape)) for size, shape in {
    "0.5B": (896, 24, 14, 2, 4864, 151936, True),
    "1.5B": (1536, 28, 12, 2, 8960, 151936, True),
    "3B": (2048, 36, 16, 2, 11008, 151936, True),
    "7B": (3584, 28, 28, 4, 18944, 152064, False),
    "14B": (5120, 48, 40, 8, 13824, 152064, False),
    "32B": (5120, 64, 40, 8, 27648, 152064, False),
}.items()}
# A tiny member for --cpu-smoke: same shape rules (GQA, SwiGLU), small enough for 2 CPU cores.
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, vocab_size=1024, tie_word_embeddings=False)
COMMON = dict(rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}, rms_norm_eps=1e-6,
              max_position_embeddings=32768, hidden_act="silu", use_sliding_window=False, use_cache=False)

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, by device-name substring; first match wins.
BF16_PEAK_TFLOPS = [
    ("H200 NVL", 835.0), ("H200", 989.4), ("GH200", 989.4),
    ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.4),
    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("A10G", 125.0),
]
GIB = 1024**3


# ---- arithmetic about a size (no torch needed) -------------------------------------------------------

def shape(size: str) -> dict:
    return TINY if size == "tiny" else QWEN25_CODER[size]


def param_counts(size: str, r: int) -> dict:
    """Parameter counts of the model and of its LoRA adapters, from the architecture alone."""
    c = shape(size)
    h, layers, v, i = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"], c["intermediate_size"]
    head_dim = h // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * head_dim
    # (in, out) of each projection; q/k/v carry a bias in Qwen2, o and the MLP do not.
    proj = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
            "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
    layer_mm = sum(a * b for a, b in proj.values())
    layer_other = h + kv + kv + 2 * h  # q/k/v biases, two RMSNorm weights
    layer_lora = sum(r * (a + b) for a, b in proj.values())
    embed = v * h
    head = 0 if c["tie_word_embeddings"] else v * h
    return {
        "total": embed + head + layers * (layer_mm + layer_other) + h,
        "matmul": layers * layer_mm + v * h,  # decoder Linears + the LM head matmul (tied or not)
        "layer_matmul": layers * layer_mm,
        "per_layer": layer_mm + layer_other,
        "lora": layers * layer_lora,
    }


def flops_per_token(size: str, r: int, seq: int) -> dict:
    c, n = shape(size), param_counts(size, r)
    attn = c["num_hidden_layers"] * seq * c["hidden_size"]  # L * S * d_attn (d_attn = heads * head_dim)
    model = 4 * n["matmul"] + 6 * n["lora"] + 6 * attn
    recompute = 2 * n["layer_matmul"] + 2 * n["lora"] + 2 * attn
    return {"model": model, "hardware": model + recompute, "six_n": 6 * n["total"]}


def estimate_memory_bytes(size: str, r: int, batch: int, seq: int) -> int:
    """A deliberately pessimistic estimate of one GPU's peak, to choose `--size auto`."""
    c, n = shape(size), param_counts(size, r)
    tokens = batch * seq
    weights = 2 * n["total"]  # bf16
    lora = 16 * n["lora"]  # bf16 weight + bf16 grad + fp32 master, exp_avg, exp_avg_sq
    gathered = 2 * 2 * n["per_layer"]  # ZeRO-3 gathers (current + prefetched layer)
    saved = 2 * tokens * c["hidden_size"] * c["num_hidden_layers"]  # checkpointed layer inputs
    layer = 2 * tokens * (4 * c["intermediate_size"] + 12 * c["hidden_size"])  # one layer recomputed
    logits = 14 * tokens * c["vocab_size"]  # bf16 logits, fp32 upcast, log-softmax, their gradients
    overhead = 3 * GIB  # CUDA context, cuBLAS workspaces, allocator fragmentation
    return weights + lora + gathered + saved + layer + logits + overhead


def pick_size(gpu_bytes: int, r: int, batch: int, seq: int, headroom: float = 0.92) -> str:
    fitting = [s for s in QWEN25_CODER if estimate_memory_bytes(s, r, batch, seq) <= headroom * gpu_bytes]
    if not fitting:
        raise SystemExit(f"no Qwen2.5-Coder size fits {gpu_bytes / GIB:.0f} GiB at batch {batch} x seq {seq}")
    return fitting[-1]


def peak_tflops(device_name: str) -> float | None:
    for key, value in BF16_PEAK_TFLOPS:
        if key in device_name:
            return value
    return None


# ---- the run -------------------------------------------------------------------------------------------

def one_rank_env(backend: str) -> None:
    """A 1-process "cluster" for torch.distributed, unless a launcher already set one up."""
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    for key, value in {"MASTER_ADDR": "127.0.0.1", "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                       "LOCAL_WORLD_SIZE": "1"}.items():
        os.environ.setdefault(key, value)
    if backend == "gloo":
        os.environ["DS_ACCELERATOR"] = "cpu"  # before deepspeed is imported: never touch a GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def ds_config(args) -> dict:
    return {
        "train_micro_batch_size_per_gpu": args.batch,
        "gradient_accumulation_steps": args.grad_accum,
        "gradient_clipping": 1.0,
        "bf16": {"enabled": args.dtype == "bfloat16"},
        "zero_optimization": {
            "stage": 3,
            "overlap_comm": True,
            "contiguous_gradients": True,
            "reduce_bucket_size": 5e8,
            "stage3_prefetch_bucket_size": 5e8,
            "stage3_param_persistence_threshold": 1e5,
            "stage3_max_live_parameters": 1e9,
            "stage3_max_reuse_distance": 1e9,
            "stage3_gather_16bit_weights_on_model_save": False,
        },
        "zero_allow_untested_optimizer": True,  # torch AdamW, as in the training loop
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def build_engine(args):
    import deepspeed
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config
    from transformers.integrations import HfDeepSpeedConfig

    dtype = getattr(torch, args.dtype)
    config = ds_config(args)
    # Must stay alive while the model is built: from_config then runs under deepspeed.zero.Init, so
    # each module's weights are partitioned as soon as it is constructed (never a full copy first).
    hf_ds = HfDeepSpeedConfig(config)
    model_config = Qwen2Config(**shape(args.size), **COMMON)
    model = AutoModelForCausalLM.from_config(model_config, dtype=dtype, attn_implementation="sdpa")
    # Partitioned at construction: every weight is already a ZeRO-3 parameter with an empty local view.
    zero_init = all(hasattr(p, "ds_id") for p in model.parameters())
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()  # harmless without reentrant checkpointing; needed with it
    lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, use_rslora=True,
                      target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.01)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    del hf_ds
    return engine, zero_init


def count_params(engine) -> tuple[int, int]:
    """(frozen base, trainable LoRA) as the engine holds them; ZeRO-3 parameters report `ds_numel`."""
    base = trainable = 0
    for p in engine.module.parameters():
        n = getattr(p, "ds_numel", p.numel())
        if p.requires_grad:
            trainable += n
        else:
            base += n
    return base, trainable


def lora_b_norm(engine) -> float:
    """Norm of every LoRA B matrix: zero at initialisation, so > 0 proves gradients reached the adapters."""
    import deepspeed

    params = [p for n, p in engine.module.named_parameters() if "lora_B" in n]
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
        return float(sum(p.detach().float().pow(2).sum() for p in params) ** 0.5)


def run(args) -> dict:
    on_gpu = not args.cpu_smoke
    one_rank_env("nccl" if on_gpu else "gloo")  # before torch and deepspeed are imported
    import deepspeed
    import torch

    if on_gpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --cpu-smoke")
    device = torch.device("cuda", 0) if on_gpu else torch.device("cpu")
    if on_gpu:
        torch.cuda.set_device(device)
    device_name = torch.cuda.get_device_name(device) if on_gpu else platform.processor() or "cpu"
    device_bytes = torch.cuda.get_device_properties(device).total_memory if on_gpu else None
    if args.size == "auto":
        args.size = pick_size(device_bytes, args.lora_r, args.batch, args.seq) if on_gpu else "tiny"
    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo", auto_mpi_discovery=False)

    t0 = time.perf_counter()
    engine, zero_init = build_engine(args)
    build_s = time.perf_counter() - t0
    base, trainable = count_params(engine)
    vocab = shape(args.size)["vocab_size"]
    gen = torch.Generator(device="cpu").manual_seed(0)

    def step() -> float:
        for _ in range(args.grad_accum):
            ids = torch.randint(0, vocab, (args.batch, args.seq), generator=gen).to(engine.device)
            loss = engine(input_ids=ids, labels=ids).loss
            engine.backward(loss)
            engine.step()  # DeepSpeed steps the optimizer at the accumulation boundary
        return float(loss.detach())

    def sync():
        if on_gpu:
            torch.cuda.synchronize(device)

    b_norm_before = lora_b_norm(engine)
    losses = [step() for _ in range(args.warmup)]
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    sync()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        losses.append(step())
        sync()
        times.append(time.perf_counter() - t)

    b_norm_after = lora_b_norm(engine)
    step_s = sum(times) / len(times)
    tokens_per_step = args.batch * args.seq * args.grad_accum
    tokens_per_s = tokens_per_step / step_s
    flops = flops_per_token(args.size, args.lora_r, args.seq)
    peak = args.peak_tflops or (peak_tflops(device_name) if on_gpu else None)

    def util(per_token: float) -> float | None:
        return round(per_token * tokens_per_s / (peak * 1e12), 4) if peak else None

    if on_gpu:
        peak_mem = torch.cuda.max_memory_allocated(device)
        reserved = torch.cuda.max_memory_reserved(device)
    else:  # ru_maxrss is KiB on Linux: the whole process, not only tensors
        peak_mem = reserved = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "benchmark": "gpu_zero3_qwen",
        "device": device_name,
        "device_memory_gib": round(device_bytes / GIB, 1) if device_bytes else None,
        "model": f"Qwen2.5-Coder-{args.size} architecture, random init" if args.size != "tiny" else "tiny qwen2",
        "size": args.size,
        "params": base,  # the model without its adapters
        "params_expected": param_counts(args.size, args.lora_r)["total"],
        "trainable_params": trainable,
        "trainable_expected": param_counts(args.size, args.lora_r)["lora"],
        "zero_stage": 3,
        "zero_init": zero_init,  # weights were partitioned while the model was built
        "dtype": args.dtype,
        "gradient_checkpointing": True,
        "lora": {"r": args.lora_r, "alpha": 2 * args.lora_r, "use_rslora": True, "targets": LORA_TARGETS},
        "batch": args.batch,
        "seq": args.seq,
        "grad_accum": args.grad_accum,
        "steps_timed": args.steps,
        "build_s": round(build_s, 2),
        "step_s": round(step_s, 4),
        "step_s_min": round(min(times), 4),
        "tokens_per_s": round(tokens_per_s, 1),
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "lora_b_norm": [b_norm_before, round(b_norm_after, 6)],  # before / after: the adapters trained
        "peak_memory_gib": round(peak_mem / GIB, 2),
        "peak_reserved_gib": round(reserved / GIB, 2),
        "peak_memory_kind": "torch.cuda.max_memory_allocated" if on_gpu else "process max RSS",
        "est_memory_gib": round(estimate_memory_bytes(args.size, args.lora_r, args.batch, args.seq) / GIB, 1),
        "flops_per_token": flops["model"],
        "flops_accounting": "4*N_matmul + 6*N_lora + 6*L*S*d_attn (frozen base: fwd + act-grad; causal attn)",
        "peak_tflops_bf16": peak,
        "achieved_tflops": round(flops["model"] * tokens_per_s / 1e12, 4),
        "mfu": util(flops["model"]),
        "hfu": util(flops["hardware"]),
        "mfu_6n": util(flops["six_n"]),
        "torch": torch.__version__,
        "deepspeed": deepspeed.__version__,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="auto", choices=["auto", *QWEN25_CODER, "tiny"],
                   help="Qwen2.5-Coder member; auto = largest that fits this GPU's memory")
    p.add_argument("--batch", type=int, default=2, help="micro-batch per device (paper: 2)")
    p.add_argument("--seq", type=int, default=2048, help="tokens per sequence (paper max: 2048)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--steps", type=int, default=3, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed optimizer steps first")
    p.add_argument("--lora-r", type=int, default=32)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's bf16 dense peak")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="tiny model, CPU, gloo, seq 128, 2+1 steps: checks the code path without a GPU")
    args = p.parse_args(argv)
    if args.cpu_smoke:
        args.size = "tiny" if args.size == "auto" else args.size
        args.seq = 128 if args.seq == 2048 else args.seq
        args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    # DeepSpeed's op builders and ninja write progress to file descriptor 1: send everything that runs
    # to stderr, so that stdout carries exactly one line, the JSON result.
    sys.stdout.flush()
    saved_stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        result = run(args)
    finally:
        sys.stdout.flush()
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
