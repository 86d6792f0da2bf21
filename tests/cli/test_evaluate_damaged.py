"""`dynamics evaluate` on a finished run with a damaged checkpoint names the file and fails (exit 1), rather
than leaving the checkpoint out in silence (issue 22 item 6)."""

from dynamics.cli import main
from dynamics.config import ExperimentConfig
from dynamics.train.checkpoint import checkpoint_dir_name, checkpoint_root, write_manifest, write_meta
from tests.conftest import tiny_config


def _finished_run_with_a_damaged_checkpoint(tmp_path):
    """A finished tiny run whose checkpoint 2 has its adapter weights cut in half (manifest says 1000 bytes)."""
    cfg = ExperimentConfig.model_validate(tiny_config(tmp_path, wandb={"enabled": False})).resolved()
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "config.yaml").write_text(cfg.to_yaml())
    (cfg.run_dir / "done.json").write_text("{}")
    ckpt = checkpoint_root(cfg) / checkpoint_dir_name(2)
    (ckpt / "adapter").mkdir(parents=True)
    (ckpt / "adapter" / "adapter_config.json").write_text("{}")
    weights = ckpt / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(b"w" * 1000)
    write_meta(ckpt, 2, cfg.run_id, total_steps=2, world=1)
    write_manifest(ckpt, 0)
    weights.write_bytes(b"w" * 500)  # cut in half
    return cfg, weights


def test_a_damaged_checkpoint_of_a_finished_run_is_an_error_naming_its_file(tmp_path, capsys):
    cfg, weights = _finished_run_with_a_damaged_checkpoint(tmp_path)

    assert main(["evaluate", str(cfg.experiment_dir), "--evals", "adapter"]) == 1
    out = capsys.readouterr().out
    assert f"error: {cfg.run_id}: damaged checkpoint left out: {weights}: has 500 bytes, its manifest says 1000" in out


def test_a_damaged_checkpoint_not_asked_for_is_no_error(tmp_path, capsys):
    """`--steps` that leaves the damaged checkpoint out, or nothing left to compute there: exit 0, no line."""
    cfg, weights = _finished_run_with_a_damaged_checkpoint(tmp_path)

    assert main(["evaluate", str(cfg.experiment_dir), "--evals", "adapter", "--steps", "4"]) == 0
    assert "damaged checkpoint left out" not in capsys.readouterr().out
