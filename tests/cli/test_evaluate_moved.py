"""An experiment folder moved or renamed after training (`mv results/x results/y`) can still be evaluated:
its identity (run ids, W&B ids, stored rows) is the name it was trained under, its place is where it is now
(issue 22 item 7: `evaluate` refused, "the config's run id 'y-...' is not its folder's name 'x-...'")."""

from dynamics.config import ExperimentConfig
from dynamics.orchestration.evaluate import missing_results, targets_from_results
from dynamics.train.checkpoint import checkpoint_dir_name, checkpoint_root, write_meta
from tests.conftest import tiny_config


def test_a_renamed_experiment_folder_is_evaluated_where_it_is_under_its_own_name(tmp_path):
    cfg = ExperimentConfig.model_validate(tiny_config(tmp_path, name="x")).resolved()
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "config.yaml").write_text(cfg.to_yaml())
    ckpt = checkpoint_root(cfg) / checkpoint_dir_name(2)
    (ckpt / "adapter").mkdir(parents=True)
    (ckpt / "adapter" / "adapter_config.json").write_text("{}")
    write_meta(ckpt, 2, cfg.run_id, total_steps=4)
    moved = cfg.experiment_dir.parent / "y"
    cfg.experiment_dir.rename(moved)

    (target,) = targets_from_results(moved, ["logprob"])
    assert target.cfg.run_id == cfg.run_id and target.cfg.name == "x"
    assert target.cfg.experiment_dir == moved and target.cfg.run_dir == moved / "runs" / cfg.run_id
    assert missing_results(target, ["logprob"], None) == [(2, "logprob")]  # its checkpoints found where they are
    # a round trip through the evaluators' JSON keeps the place
    again = ExperimentConfig.model_validate(target.cfg.model_dump(mode="json"))
    assert again.experiment_dir == moved


def test_a_folder_named_as_the_experiment_needs_no_folder_key(tmp_path):
    cfg = ExperimentConfig.model_validate(tiny_config(tmp_path, name="x")).resolved()
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "config.yaml").write_text(cfg.to_yaml())
    (target,) = targets_from_results(cfg.experiment_dir, ["logprob"])
    assert target.cfg.folder is None and target.cfg.experiment_dir == cfg.experiment_dir
