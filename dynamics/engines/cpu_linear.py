"""oneDNN linear layers with prepacked weights, for float32 inference on CPU.

torch runs a float32 `nn.Linear` on CPU through MKL's sgemm. For the shapes of decoding (a few rows
against every weight of the model, once per new token) MKL reads the weights far below the memory
bandwidth: on the 2-core AMD EPYC (AVX2) box of this project, SmolLM2-135M's linear layers took 148 ms
per decoding step at 4 rows and 162 ms at 16 rows with MKL, against 76 and 110 ms with oneDNN on
weights packed once into its blocked layout (`benchmarks/README.md`). Inputs of more than `MAX_ROWS`
rows (prefill, teacher-forced scoring, the judge's trie passes) keep torch's path: there MKL is about
as fast. The packed copy is made on the first use of each weight and dropped with it (a checkpoint's
merged weights are replaced at the next checkpoint).

Values: a different kernel adds the same products in a different order, so outputs differ from MKL's by
float32 rounding (~1e-6 relative; tested to 1e-4 in log-probability, like merged adapters). Anything
that needs gradients, another device or another dtype takes torch's own path, so training is untouched.

    packed = PackedLinears.install(model)   # None where this torch has no usable oneDNN
"""

from __future__ import annotations

import logging
import types
import weakref

import torch

log = logging.getLogger(__name__)

# oneDNN picks its blocked layout for a batch-size hint; decoding's few rows are the case that matters.
_ROWS_HINT = 16
# Above this many rows (a prompt's prefill, scoring, the judge's trie passes) MKL is as fast as oneDNN on
# a layout packed for 16 rows (measured: 0.9-1.1x at 7200 rows), so those passes keep torch's own path
# and their values are exactly what they were.
MAX_ROWS = 512


def onednn_linear_available() -> bool:
    """Whether this torch can run a prepacked oneDNN linear layer, checked on a small one."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        w = torch.randn(24, 16, generator=torch.Generator().manual_seed(0))
        x = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
        b = torch.randn(24, generator=torch.Generator().manual_seed(2))
        got = _linear(x, torch.ops.mkldnn._reorder_linear_weight(w, _ROWS_HINT), b)
        return torch.allclose(got, torch.nn.functional.linear(x, w, b), rtol=1e-4, atol=1e-5)
    except Exception as e:  # an op missing from this build: the plain path it is
        log.info("oneDNN linear unavailable (%s: %s); using torch's own", type(e).__name__, e)
        return False


def _version(w: torch.Tensor) -> int:
    try:
        return w._version
    except RuntimeError:  # an inference-mode tensor has no version counter: it cannot change in place
        return -1


def _linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


class PackedLinears:
    """The `nn.Linear` layers of one model, running on oneDNN with packed weights where they can.

    The layers' forward is replaced on the instances (not the class), so a model loaded elsewhere in the
    same process is not affected. A weight is packed the first time it is used and the copy is keyed to
    that weight object and its version: pointing a layer at another weight (merged adapters) or changing
    it in place (training) never uses a stale copy, and the copy goes when the weight does.
    """

    def __init__(self):
        self._packed: dict[int, tuple[weakref.ref, int, torch.Tensor]] = {}
        self.layers = 0

    @classmethod
    def install(cls, model: torch.nn.Module) -> "PackedLinears | None":
        if not onednn_linear_available():
            return None
        self = cls()
        for mod in model.modules():  # the vocabulary projection too (tied or not, it is a module)
            if type(mod) is torch.nn.Linear and "forward" not in mod.__dict__:
                mod.forward = types.MethodType(self._forward_for(), mod)
                self.layers += 1
        return self

    def _forward_for(self):
        packed_for = self.packed_for

        def forward(mod: torch.nn.Linear, x: torch.Tensor) -> torch.Tensor:
            w = mod.weight
            if (x.device.type != "cpu" or x.dtype != torch.float32 or w.dtype != torch.float32
                    or x.numel() > MAX_ROWS * x.shape[-1]
                    or (torch.is_grad_enabled() and (w.requires_grad or x.requires_grad))):
                return torch.nn.functional.linear(x, w, mod.bias)
            return _linear(x, packed_for(w), mod.bias)

        return forward

    def packed_for(self, w: torch.Tensor) -> torch.Tensor:
        key, version = id(w), _version(w)
        entry = self._packed.get(key)
        if entry is not None and entry[0]() is w and entry[1] == version:
            return entry[2]
        with torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(w.detach(), _ROWS_HINT)
        self._packed[key] = (weakref.ref(w, lambda _, k=key: self._drop(k)), version, packed)
        return packed

    def _drop(self, key: int) -> None:
        self._packed.pop(key, None)

    @property
    def packed_weights(self) -> int:
        """Weights with a packed copy now."""
        return len(self._packed)
