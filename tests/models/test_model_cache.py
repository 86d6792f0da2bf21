"""The model cache cannot be poisoned: a partial folder is rebuilt, a built one is reused, and no build
runs where it would write a half folder (a rank other than 0 of a process group)."""

from __future__ import annotations

import os
import shutil

import pytest
import torch.multiprocessing as mp

from dynamics.models import (CACHE_ENV, ModelCacheError, default_cache_dir, load_model, missing_parts,
                             resolve_model)

pytestmark = pytest.mark.real_model  # builds SmolLM2 from its GGUF file when the cache is empty


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """An empty cache holding only the embedded model (copied: converting the GGUF again costs ~30 s)."""
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(resolve_model("embedded:smollm2", build=True), root / "embedded-smollm2")
    return root


def test_a_marked_folder_without_weights_is_detected_and_rebuilt(cache, capfd):
    # Today's failure on a fresh machine: `.complete` and the tokenizer files, no config.json, no weights.
    poisoned = cache / "tiny-llama"
    poisoned.mkdir()
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(cache / "embedded-smollm2" / f, poisoned / f)
    (poisoned / ".complete").write_text("ok\n")
    assert set(missing_parts(poisoned)) >= {"config.json"} and any("weights" in m for m in missing_parts(poisoned))

    with pytest.raises(ModelCacheError, match=r"tiny:llama.*not built.*config\.json.*weights"):
        resolve_model("tiny:llama", cache, build=False)  # what a Ray worker does: load only, never build

    capfd.readouterr()
    path = resolve_model("tiny:llama", cache, build=True)
    assert "is incomplete (missing: config.json" in capfd.readouterr().err
    assert missing_parts(poisoned) == []
    model = load_model("tiny:llama", cache_dir=cache, build=False)
    assert model.config.num_hidden_layers == 2

    # A second resolve rebuilds nothing: same files, no message.
    stamp = os.stat(os.path.join(path, "model.safetensors")).st_mtime_ns
    capfd.readouterr()
    assert resolve_model("tiny:llama", cache, build=True) == path
    assert capfd.readouterr().err == ""
    assert os.stat(os.path.join(path, "model.safetensors")).st_mtime_ns == stamp


def test_the_cache_location_is_an_environment_setting(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    with pytest.raises(ModelCacheError, match=str(tmp_path / "elsewhere" / "tiny-qwen2")):
        resolve_model("tiny:qwen2", build=False)
    # The config key wins over the environment variable.
    with pytest.raises(ModelCacheError, match=str(tmp_path / "cfg" / "tiny-qwen2")):
        resolve_model("tiny:qwen2", tmp_path / "cfg", build=False)
    assert resolve_model("some/hub-id", build=False) == "some/hub-id"  # not built in: passed through


def _rank_builds(rank: int, world: int, store: str, cache: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        if rank == 1:
            try:
                resolve_model("tiny:llama", cache, build=True)
                result = "built"
            except ModelCacheError as e:
                result = f"refused: {e}"
            with open(out, "w") as f:
                f.write(result)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_no_build_on_a_rank_other_than_0(tmp_path):
    cache, out = tmp_path / "models", tmp_path / "result.txt"
    cache.mkdir()
    mp.spawn(_rank_builds, args=(2, str(tmp_path / "store"), str(cache), str(out)), nprocs=2, join=True)
    assert out.read_text().startswith("refused: refusing to build tiny-llama on rank 1")
    assert not (cache / "tiny-llama").exists()  # no half folder left behind
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
