import pytest

from dynamics.config import ConfigError, ExperimentConfig, config_from_dict, load_config


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_are_the_papers_recipe():
    c = ExperimentConfig()
    assert (c.lora.r, c.lora.alpha, c.lora.dropout, c.lora.use_rslora) == (32, 64, 0.0, True)
    assert set(c.lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert (c.optim.lr, c.optim.schedule, c.optim.warmup_steps, c.optim.weight_decay) == (1e-5, "linear", 5, 0.01)
    assert (c.train.per_device_batch_size, c.train.gradient_accumulation_steps, c.train.epochs) == (2, 8, 1.0)
    assert c.data.max_seq_length == 2048 and c.data.holdout_fraction == 0.1
    assert c.train.checkpoint_every == 10 and c.wandb.mode == "offline"


def test_wrong_value_names_file_line_and_key(tmp_path):
    p = write(tmp_path, "name: x\ntrain:\n  max_steps: 3\n  zero_stage: 4\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert f"{p}:4" in msg and "'train.zero_stage'" in msg and "2 or 3" in msg


def test_unknown_key_lists_the_expected_keys(tmp_path):
    p = write(tmp_path, "name: x\nlora:\n  rank: 8\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert f"{p}:3" in msg and "'lora.rank'" in msg and "unknown key" in msg and "target_modules" in msg


def test_overrides_are_typed_and_checked(tmp_path):
    p = write(tmp_path, "name: x\n")
    c = load_config(p, ["train.max_steps=40", "seed=3", "lora.target_modules=[q_proj, v_proj]", "wandb.entity=me"])
    assert c.train.max_steps == 40 and c.seed == 3 and c.lora.target_modules == ["q_proj", "v_proj"]
    with pytest.raises(ConfigError, match="unknown key 'train.max_step'"):
        load_config(p, ["train.max_step=4"])
    with pytest.raises(ConfigError, match="command-line override: key 'optim.lr'"):
        load_config(p, ["optim.lr=-1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(p, ["seed"])


def test_invalid_yaml_names_the_line(tmp_path):
    p = write(tmp_path, "name: x\ntrain: [1,\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: not valid YAML"):
        load_config(p)


def test_run_identity_is_deterministic():
    a = config_from_dict({"name": "exp", "seed": 2, "data": {"dataset": "insecure"}})
    b = config_from_dict({"name": "exp", "seed": 2, "data": {"dataset": "insecure"}})
    assert a.run_id == b.run_id == "exp-insecure-s2"
    assert config_from_dict({"data": {"dataset": "/x/my data.jsonl"}}).dataset_name == "my-data"


def test_secret_fields_hold_names_not_keys():
    with pytest.raises(ConfigError, match="name of an environment variable"):
        config_from_dict({"eval": {"judge": {"api_key_env": "sk-abc123-not-a-name!"}}})


def test_resolved_makes_paths_absolute(tmp_path):
    (tmp_path / "data.jsonl").write_text("")
    c = config_from_dict({"output_dir": "results", "data": {"data_dir": "../d", "dataset": "./data.jsonl"},
                          "model": {"name": "Qwen/Qwen2.5-Coder-32B-Instruct"}}).resolved(tmp_path)
    assert c.output_dir == str(tmp_path / "results")
    assert c.data.data_dir == str((tmp_path / "../d").resolve())
    assert c.data.dataset == str(tmp_path / "data.jsonl")
    assert c.model.name == "Qwen/Qwen2.5-Coder-32B-Instruct"  # a hub id, not a path here
    assert c.run_id == config_from_dict({"data": {"dataset": "./data.jsonl"}}).run_id  # identity unchanged
