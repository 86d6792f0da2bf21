"""Inner products of LoRA updates from their factors: dW = scale * B @ A is never materialised.

For one module, <s1 B1 A1, s2 B2 A2>_F = s1 s2 trace((B1^T B2)(A2 A1^T)), which needs only r x r products
(docs/METRICS.md section 5): for a 32B model dW is model-sized, its factors are not. The Frobenius norm is
the square root of the self inner product; the update of the whole adapter is the concatenation of its
modules' updates, so its inner products are the sums over modules.

    adapters = [AdapterFactors.load(d) for d in checkpoint_adapter_dirs]
    gram = gram_matrix(adapters)          # k x k inner products of the flattened updates
    per_module = module_inner(adapters[0], adapters[1])

Scale per module as peft applies it: alpha / sqrt(r) with rsLoRA, alpha / r without; `rank_pattern` and
`alpha_pattern` (per-module r and alpha) are honoured. DoRA adapters are refused: their update is not B @ A.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

_FACTOR = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])(?:\.[^.]+)?\.weight$")
_LAYER = re.compile(r"\.layers\.(\d+)\.")


class AdapterError(ValueError):
    pass


def _pattern_value(pattern: dict, module: str, default):
    """peft's rule: a pattern key applies to a module whose name ends with it (after a dot)."""
    for key, value in pattern.items():
        if re.fullmatch(rf"(.*\.)?{key}", module):
            return value
    return default


@dataclass
class AdapterFactors:
    """The LoRA factors of one adapter directory, lazily read one module at a time."""

    path: Path
    modules: dict[str, tuple[str, str]]  # module -> (A key, B key) in the safetensors file
    scales: dict[str, float]

    @classmethod
    def load(cls, adapter_dir: str | Path) -> "AdapterFactors":
        d = Path(adapter_dir)
        cfg_path, weights = d / "adapter_config.json", d / "adapter_model.safetensors"
        if not cfg_path.is_file() or not weights.is_file():
            raise AdapterError(f"{d}: not a PEFT LoRA adapter (expected adapter_config.json and "
                               "adapter_model.safetensors)")
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("peft_type", "LORA") != "LORA" or cfg.get("use_dora"):
            raise AdapterError(f"{cfg_path}: adapter signals need a plain LoRA adapter (peft_type LORA, "
                               f"use_dora false); got peft_type {cfg.get('peft_type')!r}, use_dora "
                               f"{cfg.get('use_dora')!r}")
        from safetensors import safe_open

        pairs: dict[str, dict[str, str]] = {}
        try:
            with safe_open(str(weights), framework="pt") as f:
                for key in f.keys():
                    m = _FACTOR.match(key)
                    if m:
                        pairs.setdefault(m["module"], {})[m["which"]] = key
        except Exception as e:  # noqa: BLE001  (safetensors' own error types vary by version)
            raise AdapterError(f"{weights}: cannot be read ({e}): the file is damaged or cut short") from None
        modules, scales = {}, {}
        for module, p in sorted(pairs.items()):
            if set(p) != {"A", "B"}:
                raise AdapterError(f"{weights}: module {module!r} has lora_{next(iter(p))} without its pair")
            modules[module] = (p["A"], p["B"])
            r = _pattern_value(cfg.get("rank_pattern") or {}, module, cfg["r"])
            alpha = _pattern_value(cfg.get("alpha_pattern") or {}, module, cfg["lora_alpha"])
            scales[module] = alpha / (math.sqrt(r) if cfg.get("use_rslora") else r)
        if not modules:
            raise AdapterError(f"{weights}: no lora_A / lora_B weights found")
        return cls(d, modules, scales)

    def factors(self, module: str, handle) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B) of one module as float64 (A: r x in, B: out x r)."""
        a_key, b_key = self.modules[module]
        return handle.get_tensor(a_key).double(), handle.get_tensor(b_key).double()

    def open(self):
        from safetensors import safe_open

        return safe_open(str(self.path / "adapter_model.safetensors"), framework="pt")


def module_gram(adapters: list[AdapterFactors], module: str, handles: list) -> torch.Tensor:
    """k x k inner products <dW_i, dW_j>_F of one module across k adapters, from r x r products."""
    fac = [a.factors(module, h) for a, h in zip(adapters, handles)]
    scales = torch.tensor([a.scales[module] for a in adapters], dtype=torch.float64)
    k = len(fac)
    # trace((B_i^T B_j)(A_j A_i^T)) = sum over the r_i x r_j block of (B_i^T B_j) * (A_i A_j^T): never out x in
    if len({a.shape for a, _ in fac}) == 1 and len({b.shape for _, b in fac}) == 1:
        r = fac[0][0].shape[0]  # all k at once: two (k r) x (k r) products, then a block sum
        a_all = torch.cat([a for a, _ in fac])  # (k r) x in
        b_all = torch.cat([b.T for _, b in fac])  # (k r) x out
        g = ((b_all @ b_all.T) * (a_all @ a_all.T)).reshape(k, r, k, r).sum(dim=(1, 3))
    else:  # ranks differ between adapters: pair by pair
        g = torch.zeros(k, k, dtype=torch.float64)
        for i in range(k):
            for j in range(i, k):
                g[i, j] = g[j, i] = torch.sum((fac[i][1].T @ fac[j][1]) * (fac[i][0] @ fac[j][0].T))
    return g * scales[:, None] * scales[None, :]


def gram_matrix(adapters: list[AdapterFactors], per_module: bool = False):
    """The k x k Gram matrix of the adapters' whole flattened updates (summed over their shared modules);
    with per_module, also {module: its k x k Gram}. Adapters must target the same modules."""
    modules = list(adapters[0].modules)
    for a in adapters[1:]:
        if list(a.modules) != modules:
            diff = sorted(set(a.modules) ^ set(modules))[:3]
            raise AdapterError(f"{a.path} and {adapters[0].path} adapt different modules (e.g. {diff})")
    handles = [a.open() for a in adapters]
    try:
        grams = {m: module_gram(adapters, m, handles) for m in modules}
    finally:
        for h in handles:
            h.__exit__(None, None, None)
    total = sum(grams.values())
    return (total, grams) if per_module else total


def cosine(g: torch.Tensor, i: int, j: int) -> float | None:
    """Cosine of updates i and j from a Gram matrix; None when either update is zero (e.g. step 0)."""
    denom = math.sqrt(float(g[i, i]) * float(g[j, j]))
    return float(g[i, j]) / denom if denom > 0 else None


def module_parts(module: str) -> tuple[int | None, str]:
    """(layer index, projection) of a module name: `...layers.3.self_attn.q_proj` -> (3, 'q_proj')."""
    m = _LAYER.search(module + ".")
    return (int(m.group(1)) if m else None), module.rsplit(".", 1)[-1]


__all__ = ["AdapterFactors", "AdapterError", "gram_matrix", "module_gram", "cosine", "module_parts"]
