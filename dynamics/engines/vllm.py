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
import threading
from pathlib import Path

from dynamics.engines.base import Engine, Generation, SamplingParams, TokenLogprobs
from dynamics.tokens import ScoreRequest, prompt_ids, stop_ids

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


def _vllm_api():
    """(SamplingParams, TokensPrompt, LoRARequest) from vllm, imported only when a method needs them."""
    try:
        from vllm import SamplingParams as VSamplingParams, TokensPrompt
        from vllm.lora.request import LoRARequest
    except ImportError as e:
        raise RuntimeError("the vLLM engine needs vllm on a CUDA machine (pip install 'dynamics[gpu]'); "
                           "use eval.engine: transformers elsewhere") from e
    return VSamplingParams, TokensPrompt, LoRARequest


# ---- the engine ---------------------------------------------------------------------------------------

class VLLMEngine(Engine):
    def __init__(self, llm, tokenizer, max_lora_rank: int = 32, stop_ids=None):
        self.llm = llm
        self.tokenizer = tokenizer
        self.max_lora_rank = max_lora_rank
        self.stop_ids = frozenset(stop_ids) if stop_ids is not None else stop_token_ids(tokenizer)
        self._adapter = None  # the active LoRARequest, None for the base model

    @classmethod
    def load(cls, model_name: str, dtype: str = "bfloat16", cache_dir: str | None = None,
             tensor_parallel_size: int = 1, max_lora_rank: int = 32, gpu_memory_utilization: float = 0.85,
             max_model_len: int = 4096, seed: int = 0, enforce_eager: bool = False, max_logprobs: int = 20,
             **llm_kwargs) -> "VLLMEngine":
        from dynamics.models import load_tokenizer, resolve_model

        _vllm_api()  # a clear error before anything heavy when vllm is missing
        from vllm import LLM

        model_dir = resolve_model(model_name, cache_dir)
        tokenizer = load_tokenizer(model_name, cache_dir)
        rank = vllm_max_lora_rank(max_lora_rank)
        llm = LLM(model=model_dir, tokenizer=model_dir, dtype=dtype, enable_lora=True, max_lora_rank=rank,
                  max_loras=1, tensor_parallel_size=tensor_parallel_size,
                  gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len, seed=seed,
                  enforce_eager=enforce_eager, max_logprobs=max(20, max_logprobs), **llm_kwargs)
        return cls(llm, tokenizer, max_lora_rank=rank,
                   stop_ids=stop_token_ids(tokenizer, _generation_config_eos(model_dir)))

    # -- adapters --------------------------------------------------------------------------------
    def use_adapter(self, adapter_dir: str | Path | None) -> None:
        if adapter_dir is None:
            self._adapter = None
            return
        adapter_dir = Path(adapter_dir).resolve()
        check_adapter(read_adapter_config(adapter_dir), self.max_lora_rank, where=str(adapter_dir))
        _, _, LoRARequest = _vllm_api()
        lora_id = next_lora_id()
        self._adapter = LoRARequest(f"ckpt{lora_id}", lora_id, str(adapter_dir))

    def _run(self, prompts, sampling):
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
        outs = self._run([TokensPrompt(prompt_token_ids=list(r.input_ids)) for r in requests], params)
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
