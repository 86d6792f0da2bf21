"""The checkpoint format both sides share: the training loop writes it, the evaluator pool lists it."""

import json

from dynamics.config import ExperimentConfig
from dynamics.train.checkpoint import (
    CHECKPOINT_META, adapter_dir, checkpoint_dir_name, checkpoint_root, list_checkpoints, read_meta, write_meta,
)


def make_checkpoint(root, step, adapter=True, meta=True):
    d = root / checkpoint_dir_name(step)
    d.mkdir(parents=True)
    if adapter:
        adapter_dir(d).mkdir()
        (adapter_dir(d) / "adapter_config.json").write_text("{}")
    if meta:
        write_meta(d, step, "run", total_steps=30)
    return d


def test_meta_round_trip(tmp_path):
    write_meta(tmp_path, 20, "exp-insecure-s0", total_steps=30)
    assert read_meta(tmp_path) == {"step": 20, "tag": "step000020", "run_id": "exp-insecure-s0", "total_steps": 30}


def test_only_complete_checkpoints_are_listed_in_step_order(tmp_path):
    root = tmp_path / "ray" / "run"
    done = {step: make_checkpoint(root, step) for step in (20, 0, 10)}
    make_checkpoint(root, 30, meta=False)  # rank 0 has not written its metadata yet
    make_checkpoint(root, 40, adapter=False)  # no adapter: not evaluable
    broken = make_checkpoint(root, 50)
    (broken / CHECKPOINT_META).write_text("{not json")
    (root / "tune_state.json").write_text(json.dumps({}))  # anything else in the folder is ignored
    assert list_checkpoints(root) == [(0, done[0]), (10, done[10]), (20, done[20])]
    assert list_checkpoints(tmp_path / "missing") == []


def test_checkpoint_root_is_per_run_under_the_experiment(tmp_path):
    a = ExperimentConfig(name="exp", seed=0, output_dir=str(tmp_path))
    b = ExperimentConfig(name="exp", seed=1, output_dir=str(tmp_path))
    assert checkpoint_root(a) == tmp_path.resolve() / "exp" / "ray" / "exp-quickstart-insecure-s0"
    assert checkpoint_root(a) != checkpoint_root(b)
