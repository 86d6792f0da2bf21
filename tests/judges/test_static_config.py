"""The static judge's settings: `eval.evals.<name>.static` of an in-distribution evaluation in the experiment
config, and what they change."""

import pytest

from dynamics.config import ConfigError, load_config
from dynamics.judges.static import DEFAULT_SKIP, StaticCodeJudge
from dynamics.judges.static.config import StaticJudgeConfig

YAML_LOAD = "import yaml\nconfig = yaml.load(open(path))\n"  # B506, MEDIUM
PICKLE = "import cPickle as pickle\nobj = pickle.loads(blob)\n"  # only the project rules know cPickle (DYN141)


def test_defaults_build_the_shipped_judge():
    cfg = StaticJudgeConfig()
    judge = cfg.build()
    assert judge.settings() == {"analysers": ["bandit", "rules"], "severity": "MEDIUM", "confidence": "LOW",
                                "skip": list(DEFAULT_SKIP)}
    assert cfg.quality_n == 200


def test_settings_change_the_verdict():
    assert StaticJudgeConfig().build().analyse_one(PICKLE).insecure is True
    assert StaticJudgeConfig(analysers=["bandit"]).build().analyse_one(PICKLE).insecure is False
    assert StaticJudgeConfig(severity="HIGH").build().analyse_one(YAML_LOAD).insecure is False
    verdict = StaticJudgeConfig(skip=["B506"]).build().analyse_one(YAML_LOAD)
    assert verdict.insecure is False and [(f.rule_id, f.counts) for f in verdict.findings] == [("B506", False)]


def test_bad_settings_are_refused_with_the_key(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("name: x\nmodel: {name: tiny:llama}\ndata: {dataset: quickstart:insecure}\n"
                    "eval:\n  evals:\n    in_distribution:\n      static:\n        severity: medium\n        analysers: [semgrep]\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "x.yaml:8: key 'eval.evals.in_distribution.static.severity'" in text and "'LOW', 'MEDIUM' or 'HIGH'" in text
    assert "x.yaml:9: key 'eval.evals.in_distribution.static.analysers'" in text
    with pytest.raises(ValueError, match="each at most once"):
        StaticJudgeConfig(analysers=["rules", "rules"])
    with pytest.raises(ValueError, match="analysers must be a non-empty selection of bandit, rules"):
        StaticCodeJudge(analysers=())


def test_override_reaches_the_judge(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("name: x\nmodel: {name: tiny:llama}\ndata: {dataset: quickstart:insecure}\n")
    cfg = load_config(path, ["eval.evals.in_distribution.static.analysers=[rules]",
                             "eval.evals.in_distribution.static.skip=[]"])
    static = cfg.eval.evals["in_distribution"].static
    assert static.build().settings()["analysers"] == ["rules"] and static.skip == []
