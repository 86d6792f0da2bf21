"""The transformers back end: the tested reference. Batched, padded, KV-cached, seeded sampling.

One base model is loaded once; checkpoints' LoRA adapters are swapped in and out with peft (the adapter
weights are small: loading one is milliseconds for the embedded model).

Merged adapters (`merge_adapters`, the default on CPU): peft's LoRA layers add two small matrix products
per adapted linear layer and token (x A^T B^T), which on a CPU cost ~20% of a checkpoint's evaluation
(the quickstart: 104 s for the untouched model against 127-136 s for a checkpoint). Instead each adapted
layer gets a second weight, W + scale * B A (peft's `get_delta_weight`), computed once per checkpoint, and
the LoRA path stays off: the layers run plain linear products. Switching between the checkpoint and the
base model (a local "self" judge, `without_adapter`) points each layer at one weight or the other, so the
base weights are never modified and nothing drifts. The cost is one extra copy of the adapted weights in
memory. Values agree with the unmerged path to float32 rounding (tested to 1e-4 in log-probability).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch

from dynamics.engines.base import Engine, Generation, SamplingParams, TokenLogprobs
from dynamics.engines.cpu_linear import PackedLinears
from dynamics.engines.trie import ContinuationTrie, common_prefix_len, prefix_order, trie_batch
from dynamics.tokens import ScoreRequest, prompt_ids, stop_ids


class HFEngine(Engine):
    def __init__(self, model, tokenizer, batch_size: int = 8, max_batch_tokens: int = 8192,
                 merge_adapters: bool | None = None, onednn_linear: bool | None = None):
        self.base = model.eval()
        self.model = self.base  # becomes a PeftModel on the first adapter
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        # None: merge on CPU (memory is plentiful there, per-token LoRA products are not cheap)
        self.merge_adapters = self.device.type == "cpu" if merge_adapters is None else merge_adapters
        self._adapter: str | None = None  # the active adapter (None: the base model)
        self._loaded: str | None = None  # the adapter peft holds: one at a time
        self._counter = 0
        self._own_weights: dict[str, torch.nn.Parameter] = {}  # adapted layer -> the base model's weight
        self._merged_weights: dict[str, torch.nn.Parameter] = {}  # adapted layer -> W + delta (active adapter)
        # None: on CPU in float32, where torch's MKL path is slow for decoding's few rows (cpu_linear.py)
        if onednn_linear is None:
            onednn_linear = self.device.type == "cpu" and next(self.base.parameters()).dtype == torch.float32
        self.packed = PackedLinears.install(self.base) if onednn_linear else None

    @classmethod
    def load(cls, model_name: str, dtype: str = "float32", cache_dir: str | None = None, **kwargs) -> "HFEngine":
        from dynamics.models import load_model, load_tokenizer

        return cls(load_model(model_name, dtype, cache_dir), load_tokenizer(model_name, cache_dir), **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    # -- adapters --------------------------------------------------------------------------------
    def use_adapter(self, adapter_dir: str | Path | None) -> None:
        from peft import PeftModel

        if adapter_dir is None:
            self._set_active_adapter_state(None)
            return
        self._counter += 1
        name = f"ckpt{self._counter}"
        if not isinstance(self.model, PeftModel):
            self.model = PeftModel.from_pretrained(self.base, str(adapter_dir), adapter_name=name).eval()
        else:
            old = self._loaded  # the last one loaded, active or not (after use_adapter(None) too)
            self.model.load_adapter(str(adapter_dir), adapter_name=name)
            self.model.set_adapter(name)
            if old is not None and old != name:
                self.model.delete_adapter(old)
        self.model.set_adapter(name)
        self._adapter = self._loaded = name
        if self.merge_adapters:
            self._merge(name)

    @torch.no_grad()
    def _merge(self, name: str) -> None:
        """Per adapted layer, W + delta of adapter `name`, kept beside the base model's own W."""
        from peft.tuners.lora import LoraLayer

        self._point_weights(merged=False)
        merged = {}
        for path, mod in self.model.named_modules():
            if isinstance(mod, LoraLayer) and name in mod.lora_A:
                own = self._own_weights.setdefault(path, mod.base_layer.weight)
                delta = mod.get_delta_weight(name).to(own.dtype)
                merged[path] = torch.nn.Parameter(own.detach() + delta, requires_grad=False)
        self._merged_weights = merged
        self._point_weights(merged=True)

    def _point_weights(self, merged: bool) -> None:
        """Each adapted layer computes with the merged weight (a checkpoint) or its own (the base model)."""
        if not self._own_weights:
            return
        modules = dict(self.model.named_modules())
        for path, own in self._own_weights.items():
            modules[path].base_layer.weight = self._merged_weights.get(path, own) if merged else own

    def _set_active_adapter_state(self, state) -> None:  # without_adapter(): the base model's own weights
        self._adapter = state
        if self.merge_adapters:
            self._point_weights(merged=state is not None)

    def _adapter_scope(self):
        from peft import PeftModel

        if isinstance(self.model, PeftModel) and (self._adapter is None or self.merge_adapters):
            return self.model.disable_adapter()  # merged: the LoRA path stays off, the weights carry it
        return nullcontext()

    # -- batching --------------------------------------------------------------------------------
    def _batches(self, lengths: list[int], batch_size: int | None = None):
        """Index batches, longest first (less padding), capped in sequences and in padded tokens."""
        batch_size = batch_size or self.batch_size
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batch: list[int] = []
        for i in order:
            longest = lengths[batch[0]] if batch else lengths[i]
            if batch and (len(batch) >= batch_size or longest * (len(batch) + 1) > self.max_batch_tokens):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _pad(self, seqs: list[list[int]], left: bool):
        pad = self.tokenizer.pad_token_id
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            if left:
                ids[r, width - len(s):] = torch.tensor(s)
                mask[r, width - len(s):] = 1
            else:
                ids[r, : len(s)] = torch.tensor(s)
                mask[r, : len(s)] = 1
        return ids.to(self.device), mask.to(self.device)

    # -- scoring ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def score(self, requests: list[ScoreRequest]) -> list[list[float]]:
        out: list[list[float]] = [[] for _ in requests]  # a request without spans scores nothing
        # A span [s, e) is read from rows s-1..e-2, which see ids[:e-1] only: requests that agree up to
        # their last read row share one forward pass (a multiple-choice question's "A" and "B"), and the
        # tokens after it (end of turn, ...) are never run.
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, r in enumerate(requests):
            if r.spans:
                groups.setdefault(tuple(r.input_ids[: max(e for _, e in r.spans) - 1]), []).append(i)
        keys = list(groups)
        body, head = self._body_and_head()
        with self._adapter_scope():
            for batch in self._batches([len(k) for k in keys]):
                ids, _ = self._pad([list(keys[j]) for j in batch], left=False)
                # No padding mask: padding is on the right, so under the causal mask no read row sees it
                # (the plain causal attention path, as lm-eval's; the padded rows are never read).
                hidden = body(input_ids=ids, use_cache=False).last_hidden_state
                where = [(row, i, s, e) for row, j in enumerate(batch) for i in groups[keys[j]]
                         for s, e in requests[i].spans]
                # The vocabulary projection only for the read rows, then log-softmax in float64: a float32
                # one over a 49k-150k vocabulary is off by up to ~2e-4 on some CPUs' vectorised exp.
                logp = torch.log_softmax(self._logits(head, torch.cat([hidden[row, s - 1: e - 1] for row, _, s, e in where])).double(), dim=-1)
                targets = torch.tensor([t for _, i, s, e in where for t in requests[i].input_ids[s:e]], device=self.device)
                sums = iter(logp.gather(-1, targets[:, None])[:, 0].split([e - s for *_, s, e in where]))
                for j in batch:
                    for i in groups[keys[j]]:
                        out[i] = [float(next(sums).sum()) for _ in requests[i].spans]
        return out

    @torch.inference_mode()
    def next_token_logprobs(self, conversations: list[list[dict]], top_k: int = 20) -> list[TokenLogprobs]:
        prompts = [prompt_ids(self.tokenizer, c) for c in conversations]
        out: list[TokenLogprobs | None] = [None] * len(prompts)
        with self._adapter_scope():
            for batch in self._batches([len(p) for p in prompts]):
                ids, mask = self._pad([prompts[i] for i in batch], left=True)
                # float64: a float32 log-softmax over a 49k-150k vocabulary is off by up to ~2e-4 on some
                # CPUs' vectorised exp (measured here); one row per prompt, so the cost is nil.
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, -1].double()
                top = torch.log_softmax(logits, dim=-1).topk(top_k, dim=-1)
                for row, i in enumerate(batch):
                    toks = self.tokenizer.convert_ids_to_tokens(top.indices[row].tolist())
                    texts = [self.tokenizer.convert_tokens_to_string([t]) for t in toks]
                    out[i] = TokenLogprobs(list(zip(texts, top.values[row].tolist())))
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def continuation_logprobs(self, conversations: list[list[dict]], continuations: list[list[int]],
                              not_followed_by: list[int] = ()) -> list[list[float]]:
        """Batched passes over the prompts plus the trie of all continuations (`dynamics.engines.trie`).

        Every trie node (a continuation prefix) is one token placed after the prompt; a 4D attention mask
        lets it see the prompt and its own ancestors only, at the position it would have in that
        continuation, so its logits are the next-token distribution after that prefix. 101 numbers
        0..100 written digit by digit are 101 nodes: a prompt costs about one 101-token extension. Prompts
        are sorted so a batch shares a prefix (chat template, judge template head), whose key/value cache
        is computed once; only the m + 1 rows read get the vocabulary projection. With
        `not_followed_by`, each value also includes log P(next token is none of those ids).
        """
        trie = ContinuationTrie(continuations)
        prompts = [prompt_ids(self.tokenizer, c) for c in conversations]
        excluded = list(not_followed_by)
        out: list[list[float] | None] = [None] * len(prompts)
        order = prefix_order(prompts)
        with self._adapter_scope():
            for batch in self._prefix_batches(order, [len(p) + len(trie) for p in prompts]):
                logits = self._trie_logits([prompts[i] for i in batch], trie)
                for row, i in enumerate(batch):
                    out[i] = trie.scores(logits[row], excluded)
        return out  # type: ignore[return-value]

    def _prefix_batches(self, order: list[int], lengths: list[int]):
        """Consecutive runs of `order` (so neighbours' shared prefixes stay together), capped in
        sequences and in padded tokens."""
        batch: list[int] = []
        for i in order:
            width = max([lengths[j] for j in batch] + [lengths[i]])
            if batch and (len(batch) >= self.batch_size or width * (len(batch) + 1) > self.max_batch_tokens):
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def _trie_logits(self, prompts: list[list[int]], trie: ContinuationTrie) -> torch.Tensor:
        """(B, m + 1, vocab) logits: after each prompt, then after each trie node."""
        body, head = self._body_and_head()
        P = common_prefix_len(prompts)
        past = None
        if P > 0:
            past = body(input_ids=torch.tensor([prompts[0][:P]], device=self.device), use_cache=True).past_key_values
            past.batch_repeat_interleave(len(prompts))
        dtype = next(self.base.parameters()).dtype
        tb = trie_batch(prompts, P, trie, self.tokenizer.pad_token_id, dtype)
        hidden = body(input_ids=tb.input_ids.to(self.device), position_ids=tb.position_ids.to(self.device),
                      attention_mask=tb.mask.to(self.device), past_key_values=past, use_cache=past is not None
                      ).last_hidden_state
        return self._logits(head, hidden[:, -(len(trie) + 1):])

    def _logits(self, head, hidden: torch.Tensor) -> torch.Tensor:
        logits = head(hidden)
        cap = getattr(self.base.config, "final_logit_softcapping", None)  # Gemma-2 style soft-capping
        return torch.tanh(logits / cap) * cap if cap else logits

    def _body_and_head(self):
        """The decoder stack (adapter layers included: peft injects them in place) and the vocabulary
        projection, so that logits are computed only for the rows that are read."""
        from peft import PeftModel

        model = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        return model.get_decoder(), model.get_output_embeddings()

    # -- generation ------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, conversations: list[list[dict]], params: SamplingParams) -> list[list[Generation]]:
        prompts = [prompt_ids(self.tokenizer, c) for c in conversations]
        stops = stop_ids(self.tokenizer)  # EOS and the template's end-of-turn token
        out: list[list[Generation]] = [[] for _ in prompts]
        greedy = params.temperature <= 0
        # Seeded per call: the same checkpoint, prompts and seed give the same samples.
        gen = torch.Generator(device="cpu").manual_seed(params.seed)
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        batches = list(self._batches([len(p) for p in prompts], max(1, self.batch_size // max(1, params.n))))
        from transformers import GenerationConfig, StoppingCriteriaList

        # An explicit config: the model's own generation_config defaults (repetition penalty, top-k, ...)
        # must not change the sampling recipe. Greedy decoding is sampled once and repeated n times.
        n_gen = 1 if greedy else params.n
        gen_cfg = GenerationConfig(
            max_new_tokens=params.max_new_tokens, num_return_sequences=n_gen, do_sample=not greedy,
            temperature=None if greedy else params.temperature, top_p=None if greedy else params.top_p,
            top_k=None if greedy else 0, repetition_penalty=1.0, pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=stops, use_cache=True)
        with self._adapter_scope():
            for batch in batches:
                ids, mask = self._pad([prompts[i] for i in batch], left=True)
                ticker = None if self.on_decode is None else StoppingCriteriaList([_decode_ticker(
                    self.on_decode, ids.shape[0] * n_gen, ids.shape[1], params.max_new_tokens)])
                seqs = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=gen_cfg,
                                           stopping_criteria=ticker)
                new = seqs[:, ids.shape[1]:].tolist()
                if n_gen != params.n:
                    new = [toks for toks in new for _ in range(params.n)]
                batch_tokens = 0
                for j, toks in enumerate(new):
                    i = batch[j // params.n]
                    n = len(toks)
                    ends = [k for k, t in enumerate(toks) if t in stops]
                    finished = bool(ends)
                    if finished:
                        n = ends[0]
                    else:
                        while n and toks[n - 1] == self.tokenizer.pad_token_id and self.tokenizer.pad_token_id not in stops:
                            n -= 1
                    text = self.tokenizer.decode(toks[:n], skip_special_tokens=True)
                    out[i].append(Generation(text=text, num_tokens=n, finished=finished))
                    batch_tokens += n
                if self.on_batch is not None:
                    self.on_batch(len(new), batch_tokens)
        return out


def _decode_ticker(on_decode, rows: int, prompt_len: int, max_new_tokens: int):
    """A stopping criterion that never stops: it reports each decoding step to `Engine.on_decode`."""
    from transformers import StoppingCriteria

    class DecodeTicker(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
            on_decode(rows, input_ids.shape[1] - prompt_len, max_new_tokens)
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    return DecodeTicker()
