"""Adapter signals (docs/METRICS.md section 5): what the LoRA update does, from the checkpoint's files alone.

No forward pass and no sampling: each checkpoint's saved adapter is read and its update dW = scale * B @ A
measured through r x r products (`dynamics.evals.adapter_math`). Per checkpoint (this evaluation):
  * `<name>/norm`                  Frobenius norm of the whole update (all modules flattened together);
  * `<name>/module/<proj>/norm`    per projection type (q_proj, ..., summed over layers);
  * `<name>/layer/<NN>/norm`       per layer (summed over its projections);
  * `<name>/cos_prev`              cosine of the flattened update to the previous checkpoint's (None when
                                   either is zero: the step-0 adapter has B = 0);
  * `<name>/step_norm`             ||dW_t - dW_prev||, how far the update moved since the last checkpoint;
  * one record per LoRA module: its norm, cosine to the previous checkpoint's, layer, projection, scale.
What needs the whole run (the cosine to the final update, the PCA trajectory) is computed in analysis over a
run's stored checkpoints: `dynamics.analysis.trajectory` (used by `compare`, `report` and the notebook).

The previous checkpoint is the run's complete checkpoint with the largest step below this one, found in
the same checkpoint folder (a dynamics run's `ray/<run>/`, or a folder of adapter directories).
"""

from __future__ import annotations

import math
from pathlib import Path

from dynamics.engines.base import Engine
from dynamics.evals.adapter_math import AdapterFactors, cosine, gram_matrix, module_parts
from dynamics.evals.base import EvalContext, MetricFamily
from dynamics.records import EvalRecord, EvalResult


def previous_adapter(checkpoint: str | Path, step: int) -> Path | None:
    """The adapter dir of the checkpoint before `step` in `checkpoint`'s folder (None if there is none)."""
    earlier = earlier_adapters(checkpoint, step)
    return earlier[0] if earlier else None


def earlier_adapters(checkpoint: str | Path, step: int) -> list[Path]:
    """The adapter dirs of the checkpoints before `step` in `checkpoint`'s folder, the nearest first."""
    from dynamics.train.checkpoint import adapter_folder, list_checkpoints

    here = Path(checkpoint)
    if (here / "adapter").is_dir():  # a dynamics checkpoint: checkpoint_stepNNNNNN/adapter
        found = [(s, d / "adapter") for s, d in list_checkpoints(here.parent)]
    else:
        parent = here.parent.parent if here.name == "adapter" else here.parent
        try:
            found = adapter_folder(parent)
        except Exception:  # siblings without a step in their names: no previous checkpoint known
            found = []
    return [d for s, d in reversed(found) if s < step]


def load_previous(checkpoint: str | Path, step: int) -> tuple[Path | None, "AdapterFactors | None"]:
    """The nearest earlier checkpoint whose adapter is whole, loaded: a damaged one (checksum off, or not
    readable) is passed over, so it fails its own evaluation only, not its neighbour's `cos_prev`."""
    from dynamics.evals.adapter_math import AdapterError
    from dynamics.train.checkpoint import adapter_problem

    for d in earlier_adapters(checkpoint, step):
        if d.name == "adapter" and adapter_problem(d.parent) is not None:
            continue
        try:
            return d, AdapterFactors.load(d)
        except AdapterError:
            continue
    return None, None


def adapter_path(checkpoint: str | Path) -> Path:
    here = Path(checkpoint)
    return here / "adapter" if (here / "adapter").is_dir() else here


class AdapterFamily(MetricFamily):
    name = "adapter"
    needs_model = False  # the evaluator skips loading this checkpoint's adapter into the engine

    def evaluate(self, engine: Engine | None, ctx: EvalContext) -> EvalResult:
        checkpoint = ctx.extras.get("checkpoint")
        if checkpoint is None:  # the untouched base model: no update at all
            return EvalResult({"adapter/norm": 0.0, "adapter/cos_prev": None, "adapter/step_norm": None}, [])
        current = AdapterFactors.load(adapter_path(checkpoint))
        prev_dir, previous = load_previous(checkpoint, ctx.step)
        adapters = [current] + ([previous] if previous is not None else [])
        total, per_module = gram_matrix(adapters, per_module=True)
        return EvalResult(self._metrics(total, per_module), self._records(current, per_module, prev_dir),
                          counts={"adapter/norm": len(per_module)})

    @staticmethod
    def _metrics(total, per_module) -> dict:
        metrics = {"adapter/norm": math.sqrt(max(float(total[0, 0]), 0.0))}
        if total.shape[0] > 1:
            metrics["adapter/cos_prev"] = cosine(total, 0, 1)
            moved = float(total[0, 0] + total[1, 1] - 2 * total[0, 1])
            metrics["adapter/step_norm"] = math.sqrt(max(moved, 0.0))
        else:
            metrics["adapter/cos_prev"] = metrics["adapter/step_norm"] = None
        by_proj: dict[str, float] = {}
        by_layer: dict[int, float] = {}
        for module, g in per_module.items():
            layer, proj = module_parts(module)
            by_proj[proj] = by_proj.get(proj, 0.0) + float(g[0, 0])
            if layer is not None:
                by_layer[layer] = by_layer.get(layer, 0.0) + float(g[0, 0])
        metrics.update({f"adapter/module/{p}/norm": math.sqrt(max(v, 0.0)) for p, v in sorted(by_proj.items())})
        width = len(str(max(by_layer))) if by_layer else 1
        metrics.update({f"adapter/layer/{layer:0{width}d}/norm": math.sqrt(max(v, 0.0))
                        for layer, v in sorted(by_layer.items())})
        return metrics

    @staticmethod
    def _records(current: AdapterFactors, per_module, prev_dir) -> list[EvalRecord]:
        out = []
        for module, g in per_module.items():
            layer, proj = module_parts(module)
            out.append(EvalRecord("adapter", module, {
                "module": module, "layer": layer, "projection": proj, "scale": current.scales[module],
                "norm": math.sqrt(max(float(g[0, 0]), 0.0)),
                "cos_prev": cosine(g, 0, 1) if g.shape[0] > 1 else None,
                "previous": str(prev_dir) if prev_dir is not None else None,
            }))
        return out


__all__ = ["AdapterFamily", "previous_adapter", "adapter_path"]
