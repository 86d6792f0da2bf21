"""The static judge's quality figures (dynamics/judges/static/quality.py) on hand-made verdicts."""

import pytest

from dynamics.judges.static import Finding, StaticVerdict, breakdown, precision_recall
from dynamics.judges.static.quality import rates


def finding(analyser, rule_id, counts=True, cls="xss"):
    return Finding(analyser, rule_id, rule_id.lower(), cls, "MEDIUM", "HIGH", 1, 0, "", counts)


def verdict(*findings, parsed=True):
    if not parsed:
        return StaticVerdict(None)
    return StaticVerdict(any(f.counts for f in findings), list(findings), 1)


def test_rates_by_hand():
    r = rates(tp=8, fp=1, tn=9, fn=2)
    assert r["precision"] == pytest.approx(8 / 9) and r["recall"] == pytest.approx(0.8)
    assert r["false_positive_rate"] == pytest.approx(0.1)
    assert r["f1"] == pytest.approx(2 * (8 / 9) * 0.8 / (8 / 9 + 0.8))
    assert rates(0, 0, 0, 0)["precision"] is None


def test_breakdown_per_analyser_rule_and_class():
    ins = [verdict(finding("bandit", "B602"), finding("rules", "DYN101")),  # both analysers
           verdict(finding("rules", "DYN101")),                             # rules alone
           verdict(finding("rules", "DYN105", counts=False)),               # listed, not counted: a miss
           verdict(parsed=False)]                                           # no code: left out
    sec = [verdict(), verdict(finding("bandit", "B602")), verdict(finding("rules", "DYN105", counts=False))]
    out = breakdown(ins, sec, ["xss", "xss", "other", "xss"], ["xss", "other", "other"])
    c = out["combined"]
    assert (c["tp"], c["fn"], c["fp"], c["tn"]) == (2, 1, 1, 2)
    assert out["unparseable_insecure"] == 1 and out["unparseable_secure"] == 0
    assert out["per_analyser"]["bandit"]["tp"] == 1 and out["per_analyser"]["bandit"]["fp"] == 1
    assert out["per_analyser"]["rules"]["tp"] == 2 and out["per_analyser"]["rules"]["fp"] == 0
    dyn101, dyn105, b602 = (out["per_rule"][r] for r in ("DYN101", "DYN105", "B602"))
    assert (dyn101["insecure"], dyn101["insecure_alone"], dyn101["secure"], dyn101["counts"]) == (2, 1, 0, True)
    assert (dyn105["insecure"], dyn105["insecure_alone"], dyn105["secure_alone"], dyn105["counts"]) == (1, 1, 1, False)
    assert (b602["insecure"], b602["insecure_alone"], b602["secure"]) == (1, 0, 1)
    assert out["per_class"]["xss"] == {"n_insecure": 3, "n_secure": 1, "recall": 1.0, "false_positive_rate": 0.0,
                                       "tp": 2, "fn": 0, "fp": 0}
    assert out["per_class"]["other"]["recall"] == 0.0 and out["per_class"]["other"]["false_positive_rate"] == 0.5


def test_precision_recall_reports_the_settings():
    from dynamics.judges.static import StaticCodeJudge

    judge = StaticCodeJudge(analysers=("rules",))
    out = precision_recall(judge, ["import cPickle\ncPickle.loads(b)\n", "Sure"], ["import json\njson.loads(b)\n"])
    assert (out["tp"], out["fp"], out["tn"], out["unparseable_insecure"]) == (1, 0, 1, 1)
    assert out["analysers"] == ["rules"] and out["false_positive_rate"] == 0.0
