"""Resume falls back to the latest complete checkpoint and names the incomplete ones it skipped."""

from dynamics.train.checkpoint import (
    CHECKPOINT_META, DEEPSPEED_DIR, adapter_dir, checkpoint_dir_name, checkpoint_tag, resume_point, write_meta,
)


def _checkpoint(root, step):
    d = root / checkpoint_dir_name(step)
    (d / DEEPSPEED_DIR / checkpoint_tag(step)).mkdir(parents=True)
    adapter_dir(d).mkdir()
    (adapter_dir(d) / "adapter_config.json").write_text("{}")
    write_meta(d, step, "run", total_steps=6)
    return d


def test_latest_without_metadata_falls_back_to_the_previous_complete_one(tmp_path):
    root = tmp_path / "ray" / "run"
    for step in (0, 2, 4):
        _checkpoint(root, step)
    latest = _checkpoint(root, 6)
    (latest / CHECKPOINT_META).unlink()  # what a node lost mid-save leaves
    import shutil

    shutil.rmtree(root / checkpoint_dir_name(4) / DEEPSPEED_DIR)  # and one whose DeepSpeed state is gone
    point, skipped = resume_point(root, latest)  # Ray Train restores the last reported one: step 6
    assert point == (2, root / checkpoint_dir_name(2))
    assert skipped == [f"{checkpoint_dir_name(6)}: {CHECKPOINT_META} missing",
                       f"{checkpoint_dir_name(4)}: {DEEPSPEED_DIR}/{checkpoint_tag(4)} missing"]


def test_complete_latest_is_used_and_nothing_complete_starts_from_scratch(tmp_path):
    root = tmp_path / "run"
    latest = _checkpoint(root, 2)
    assert resume_point(root, latest) == ((2, latest), [])
    (latest / CHECKPOINT_META).write_text("{not json")
    point, skipped = resume_point(root, latest)
    assert point is None and skipped[0].startswith(f"{checkpoint_dir_name(2)}: {CHECKPOINT_META} unreadable")
