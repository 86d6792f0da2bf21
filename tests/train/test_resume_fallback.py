"""Resume from the latest complete checkpoint on disk, naming the incomplete ones it skipped; a checkpoint
is complete only when every rank's manifest is there and every file it lists is whole (issue 22: a copy cut
short by a full disk left metadata, adapter and part of the model state, and counted as complete)."""

import shutil

from dynamics.train.checkpoint import (
    CHECKPOINT_META, DEEPSPEED_DIR, adapter_dir, adapter_problem, checkpoint_dir_name, checkpoint_tag,
    incomplete_checkpoints, list_checkpoints, manifest_name, resume_point, resume_problem, write_manifest, write_meta,
)


def _checkpoint(root, step, world=None):
    """A checkpoint as the training loop writes it: with `world`, each rank's files and manifest."""
    d = root / checkpoint_dir_name(step)
    (d / DEEPSPEED_DIR / checkpoint_tag(step)).mkdir(parents=True)
    (d / DEEPSPEED_DIR / checkpoint_tag(step) / "mp_rank_00_model_states.pt").write_bytes(b"m" * 1000)
    adapter_dir(d).mkdir()
    (adapter_dir(d) / "adapter_config.json").write_text("{}")
    (adapter_dir(d) / "adapter_model.safetensors").write_bytes(b"a" * 500)
    write_meta(d, step, "run", total_steps=6, world=world)
    if world:
        write_manifest(d, 0)  # rank 0's folder holds all of this; rank 1's holds only its optimizer state
        for rank in range(1, world):
            other = root / f"rank{rank}-{step}"
            (other / DEEPSPEED_DIR / checkpoint_tag(step)).mkdir(parents=True)
            (other / DEEPSPEED_DIR / checkpoint_tag(step) / f"optim_rank{rank}.pt").write_bytes(b"o" * 300)
            write_manifest(other, rank)
            shutil.copytree(other, d, dirs_exist_ok=True)  # what Ray Train's upload of each rank does
            shutil.rmtree(other)
    return d


def test_resume_takes_the_latest_complete_checkpoint_on_disk_skipping_incomplete_ones(tmp_path):
    root = tmp_path / "ray" / "run"
    for step in (0, 2, 4):
        _checkpoint(root, step)
    latest = _checkpoint(root, 6)
    (latest / CHECKPOINT_META).unlink()  # what a node lost mid-save leaves
    shutil.rmtree(root / checkpoint_dir_name(4) / DEEPSPEED_DIR)  # and one whose DeepSpeed state is gone
    point, skipped = resume_point(root)
    assert point == (2, root / checkpoint_dir_name(2))
    assert skipped == [f"{checkpoint_dir_name(6)}: {CHECKPOINT_META} missing",
                       f"{checkpoint_dir_name(4)}: {DEEPSPEED_DIR}/{checkpoint_tag(4)} missing"]


def test_nothing_complete_starts_from_scratch(tmp_path):
    root = tmp_path / "run"
    latest = _checkpoint(root, 2)
    assert resume_point(root) == ((2, latest), [])
    (latest / CHECKPOINT_META).write_text("{not json")
    point, skipped = resume_point(root)
    assert point is None and skipped[0].startswith(f"{checkpoint_dir_name(2)}: {CHECKPOINT_META} unreadable")


def test_a_copy_cut_short_is_not_complete(tmp_path):
    """The full-disk case: metadata, adapter and 11.7 of 12.6 MB of the model state copied."""
    root = tmp_path / "ray" / "run"
    for step in (2, 4, 6):
        _checkpoint(root, step, world=2)
    state = root / checkpoint_dir_name(6) / DEEPSPEED_DIR / checkpoint_tag(6) / "mp_rank_00_model_states.pt"
    state.write_bytes(b"m" * 930)
    (root / checkpoint_dir_name(4) / manifest_name(1)).unlink()  # rank 1's manifest never arrived
    assert list_checkpoints(root) == [(2, root / checkpoint_dir_name(2))]
    point, skipped = resume_point(root)
    assert point == (2, root / checkpoint_dir_name(2))
    assert skipped == [
        f"{checkpoint_dir_name(6)}: {DEEPSPEED_DIR}/{checkpoint_tag(6)}/mp_rank_00_model_states.pt has 930 bytes, "
        "its manifest says 1000 (cut short or damaged)",
        f"{checkpoint_dir_name(4)}: {manifest_name(1)} missing (a save or copy cut short)"]
    # `dynamics evaluate` says which it leaves out, with the file's full path
    assert incomplete_checkpoints(root) == [
        f"{root / checkpoint_dir_name(4) / manifest_name(1)}: missing (a save or copy cut short)",
        f"{state}: has 930 bytes, its manifest says 1000 (cut short or damaged)"]


def test_a_damaged_file_of_the_same_size_fails_resume_and_names_the_adapter(tmp_path):
    root = tmp_path / "ray" / "run"
    d = _checkpoint(root, 2, world=1)
    (adapter_dir(d) / "adapter_model.safetensors").write_bytes(b"b" * 500)  # same size, other bytes
    assert list_checkpoints(root) == [(2, d)]  # listing checks sizes; reading checks checksums
    assert resume_problem(d) == "adapter/adapter_model.safetensors does not match its manifest's checksum (damaged)"
    assert adapter_problem(d) == (f"{d / 'adapter/adapter_model.safetensors'}: does not match its manifest's "
                                  "checksum (damaged)")
    assert adapter_problem(_checkpoint(root, 4, world=1)) is None


def test_the_loop_keeps_a_complete_stored_checkpoint_and_saves_a_damaged_one_again(tmp_path):
    """A relaunch reaches a stored step only when resume rejected it or started earlier: a complete one is
    kept (its evaluations were computed on it); a damaged one (right sizes, wrong checksum) is moved out of
    the way and saved again, so its old manifests cannot vouch for a new copy cut short."""
    import types

    import torch.distributed as dist

    from dynamics.train.loop import Trainer

    root = tmp_path / "ray" / "run"
    kept, damaged = _checkpoint(root, 2, world=1), _checkpoint(root, 4, world=1)
    (adapter_dir(damaged) / "adapter_model.safetensors").write_bytes(b"b" * 500)  # same size, other bytes
    events = []
    me = types.SimpleNamespace(rank=0, links={"checkpoint_root": str(root)}, _event=events.append)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        assert Trainer._already_stored(me, 2) is True and kept.is_dir()
        assert Trainer._already_stored(me, 4) is False and not damaged.exists()
        assert Trainer._already_stored(me, 6) is False  # never saved: nothing said
    finally:
        dist.destroy_process_group()
    assert [e["text"] for e in events] == [
        f"checkpoint step 4 in storage is damaged (adapter/adapter_model.safetensors does not match its "
        "manifest's checksum (damaged)): saved again"]
