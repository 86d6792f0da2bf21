"""The adapter family and the run trajectory against dW materialised by peft itself.

The reference is independent of `dynamics.evals.adapter_math`: each peft LoRA layer's own scaling (rsLoRA,
rank_pattern and alpha_pattern applied by peft) times B @ A gives the full update matrices (materialised,
float64), which are flattened and compared with numpy (norms, cosines, a PCA by SVD of the centred updates).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamics.analysis.trajectory import run_trajectory
from dynamics.evals.adapter import AdapterFamily
from dynamics.evals.adapter_math import AdapterError, AdapterFactors
from dynamics.evals.base import EvalContext
from dynamics.records import RunInfo

STEPS = (0, 10, 20, 30)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> tuple[Path, dict[int, np.ndarray], dict[int, dict[str, float]]]:
    """A dynamics-layout checkpoint folder of a tiny Llama's LoRA at 4 steps, with peft's own dW of each."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    from dynamics.models import load_model

    root = tmp_path_factory.mktemp("ray") / "run"
    model = get_peft_model(load_model("tiny:llama"), LoraConfig(
        r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "v_proj", "down_proj"],
        rank_pattern={"down_proj": 2}, alpha_pattern={"v_proj": 3}))
    layers = {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}
    gen = torch.Generator().manual_seed(0)
    flat, per_proj = {}, {}
    for i, step in enumerate(STEPS):
        for m in layers.values():
            a, b = m.lora_A["default"].weight, m.lora_B["default"].weight
            with torch.no_grad():
                if step == 0:
                    b.zero_()  # the LoRA init: the step-0 update is zero
                else:  # a drift that keeps part of the previous direction, so cosines are not trivial
                    a.mul_(0.7).add_(torch.randn(a.shape, generator=gen))
                    b.mul_(0.7).add_(torch.randn(b.shape, generator=gen) * 0.1 * i)
        ckpt = root / f"checkpoint_step{step:06d}"
        model.save_pretrained(str(ckpt / "adapter"))
        (ckpt / "dynamics.json").write_text(json.dumps({"step": step, "tag": f"step{step:06d}"}))
        # peft's own scale (alpha / sqrt(r) per module, patterns applied) times B @ A, in float64
        deltas = {n: m.scaling["default"] * (m.lora_B["default"].weight.detach().double()
                                             @ m.lora_A["default"].weight.detach().double())
                  for n, m in layers.items()}
        flat[step] = torch.cat([d.flatten() for d in deltas.values()]).numpy()
        proj: dict[str, float] = {}
        for n, d in deltas.items():
            proj[n.rsplit(".", 1)[-1]] = proj.get(n.rsplit(".", 1)[-1], 0.0) + float((d ** 2).sum())
        per_proj[step] = {p: math.sqrt(v) for p, v in proj.items()}
    return root, flat, per_proj


def _cos(x: np.ndarray, y: np.ndarray) -> float:
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def _evaluate(root: Path, step: int) -> dict:
    info = RunInfo("t", "t-x-s0", "x", 0, "tiny:llama")
    ckpt = None if step == 0 else str(root / f"checkpoint_step{step:06d}")
    return AdapterFamily().evaluate(None, EvalContext(info, step, 0, {"checkpoint": ckpt})).metrics


def test_norms_and_cosine_to_previous_equal_peft_materialised_updates(run_dir):
    root, flat, per_proj = run_dir
    for prev, step in zip(STEPS, STEPS[1:]):
        m = _evaluate(root, step)
        assert m["adapter/norm"] == pytest.approx(np.linalg.norm(flat[step]), rel=1e-9)
        for proj, norm in per_proj[step].items():
            assert m[f"adapter/module/{proj}/norm"] == pytest.approx(norm, rel=1e-9)
        assert m["adapter/step_norm"] == pytest.approx(np.linalg.norm(flat[step] - flat[prev]), rel=1e-9)
        if prev == 0:  # the previous update is zero: no direction to compare with
            assert m["adapter/cos_prev"] is None
        else:
            assert m["adapter/cos_prev"] == pytest.approx(_cos(flat[step], flat[prev]), abs=1e-12)
    layers = {k for k in _evaluate(root, 10) if k.startswith("adapter/layer/")}
    assert layers == {"adapter/layer/0/norm", "adapter/layer/1/norm"}  # the tiny Llama's 2 layers


def test_base_model_step_has_a_zero_update(run_dir):
    assert _evaluate(run_dir[0], 0)["adapter/norm"] == 0.0


def test_trajectory_cosine_to_final_and_pca_equal_numpy_on_flattened_updates(run_dir):
    root, flat, _ = run_dir
    traj = run_trajectory([(s, root / f"checkpoint_step{s:06d}" / "adapter") for s in STEPS])
    final = flat[STEPS[-1]]
    assert traj.cos_final[0] is None  # step 0: a zero update
    for i, s in enumerate(STEPS[1:], start=1):
        assert traj.cos_final[i] == pytest.approx(_cos(flat[s], final), abs=1e-12)
    x = np.stack([flat[s] for s in STEPS])
    x = x - x.mean(axis=0)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    scores = u[:, :2] * sv[:2]
    scores *= np.where(scores[-1] < 0, -1.0, 1.0)  # the same sign convention: the last checkpoint >= 0
    np.testing.assert_allclose(traj.scores, scores, rtol=1e-7, atol=1e-9 * np.abs(scores).max())
    np.testing.assert_allclose(traj.explained, sv[:2] ** 2 / (sv ** 2).sum(), rtol=1e-7)


def test_dora_and_missing_files_are_refused_with_the_path(tmp_path, run_dir):
    with pytest.raises(AdapterError, match="not a PEFT LoRA adapter"):
        AdapterFactors.load(tmp_path)
    src = run_dir[0] / "checkpoint_step000010" / "adapter"
    dora = tmp_path / "dora"
    dora.mkdir()
    (dora / "adapter_model.safetensors").write_bytes((src / "adapter_model.safetensors").read_bytes())
    cfg = json.loads((src / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**cfg, "use_dora": True}))
    with pytest.raises(AdapterError, match="use_dora"):
        AdapterFactors.load(dora)


def test_a_damaged_adapter_fails_alone_naming_its_file(run_dir, tmp_path):
    """Issue 22 item 6: an adapter cut in half at one checkpoint failed with a traceback naming no file, and
    the intact next checkpoint failed too (its `cos_prev` loads the damaged one). Now the damaged one's
    error names the file, and the next one's `cos_prev` is to the nearest whole checkpoint before it."""
    import shutil

    root = tmp_path / "run"
    shutil.copytree(run_dir[0], root)
    flat = run_dir[1]
    weights = root / "checkpoint_step000020" / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(AdapterError, match=f"{weights}: cannot be read .*damaged or cut short"):
        _evaluate(root, 20)
    m = _evaluate(root, 30)
    assert m["adapter/cos_prev"] == pytest.approx(_cos(flat[30], flat[10]), abs=1e-12)
    assert m["adapter/step_norm"] == pytest.approx(np.linalg.norm(flat[30] - flat[10]), rel=1e-9)
