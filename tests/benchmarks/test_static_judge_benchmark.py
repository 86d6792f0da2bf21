"""benchmarks/static_judge.py prints one JSON line with the figures the README quotes, per part."""

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_one_json_line_per_part_analyser_rule_and_class(data_dir, capfd):
    import static_judge

    static_judge.main(["--data-dir", str(data_dir), "--part", "test", "--n", "15", "--no-quickstart",
                       "--no-independent"])
    out = capfd.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    assert result["settings"]["analysers"] == ["bandit", "rules"]
    test = result["parts"]["test"]
    assert (test["n_insecure"], test["n_secure"]) == (15, 15)
    c = test["combined"]
    assert c["tp"] + c["fn"] + test["unparseable_insecure"] == 15
    assert c["fp"] + c["tn"] + test["unparseable_secure"] == 15
    assert set(test["per_analyser"]) <= {"bandit", "rules"} and test["per_rule"] and test["per_class"]
    assert sum(x["n_insecure"] for x in test["per_class"].values()) == 15
    assert test["answers_per_second"] > 0 and test["answers_per_cpu_second"] > 0
    assert c["recall"] > 0.8 and c["false_positive_rate"] <= 0.2  # the shipped default, on a small slice


def test_quickstart_classes_are_the_known_ones(capfd):
    import static_judge

    from tests.data.test_quickstart_dataset import FLAW_CLASSES  # the generator's classes (scripts/)

    static_judge.main(["--part", "none", "--quickstart-n", "2", "--no-independent"])
    quick = json.loads(capfd.readouterr().out)["quickstart"]
    assert set(quick["per_class"]) == set(FLAW_CLASSES)
    assert all(c["n_insecure"] == c["n_secure"] == 2 for c in quick["per_class"].values())
    assert quick["combined"]["recall"] == pytest.approx(quick["combined"]["tp"] / (2 * len(FLAW_CLASSES)))


def test_independent_set_per_part_and_class(capfd):
    import static_judge

    from dynamics.judges.static.snippets import read_snippets

    static_judge.main(["--part", "none", "--no-quickstart"])
    parts = json.loads(capfd.readouterr().out)["independent"]
    snippets = read_snippets()
    for part in ("tuning", "held_aside"):
        got = parts[part]
        ins = [s for s in snippets if s.part == part and s.insecure]
        sec = [s for s in snippets if s.part == part and not s.insecure]
        assert (got["n_insecure"], got["n_secure"]) == (len(ins), len(sec))
        c = got["combined"]
        assert (c["tp"] + c["fn"], c["fp"] + c["tn"]) == (len(ins), len(sec))  # every snippet parses
        assert {k: v["n_insecure"] for k, v in got["per_class"].items() if v["n_insecure"]} \
            == dict(Counter(s.flaw_class for s in ins))  # classes are the snippets' own labels
        assert len(got["missed"]) == c["fn"] and len(got["false_alarms"]) == c["fp"]
    # the shipped default on its tuning part (the held-aside figures are reported, not asserted)
    assert parts["tuning"]["combined"]["recall"] >= 0.9 and parts["tuning"]["combined"]["false_positive_rate"] <= 0.05


def test_secrets_benchmark_names_its_missing_tool_and_scores_project_rules():
    import static_judge_secrets

    from dynamics.judges.static.snippets import read_snippets

    try:
        import detect_secrets  # noqa: F401  (not a dependency; only installed to measure it)
    except ImportError:
        with pytest.raises(SystemExit, match="pip install --target /tmp/ds detect-secrets"):
            static_judge_secrets.main(["--part", "none"])
    creds = [s for s in read_snippets() if s.flaw_class == "credentials"]
    flags = static_judge_secrets.project_flags([s.code for s in creds])
    assert flags == [s.insecure for s in creds]  # every insecure credentials snippet, no secure one
    assert static_judge_secrets.score([True, False], [False, False, True]) == {
        "recall": 0.5, "tp": 1, "n_insecure": 2, "false_positive_rate": 1 / 3, "fp": 1, "n_secure": 3}
