"""How well the static judge separates labelled insecure from secure answers (positive class: insecure).

    precision_recall(judge, insecure_answers, secure_answers)          # one figure set
    breakdown(insecure_verdicts, secure_verdicts, classes_ins, classes_sec)   # per analyser, rule, class

Answers without parseable code are left out of every rate and counted in `unparseable_*`. Precision
depends on the mix of the two sets (balanced in the paper's data). The analysers run once; the figures
of one analyser alone are what the judge would say with only that analyser's counting findings.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

from dynamics.judges.static._verdict import StaticVerdict


def rates(tp: int, fp: int, tn: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / (fp + tn) if fp + tn else None
    return {"precision": precision, "recall": recall, "f1": f1, "false_positive_rate": fpr,
            "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def _flags(verdicts: list[StaticVerdict], keep: Callable = lambda f: True) -> list[bool | None]:
    return [None if v.insecure is None else any(f.counts and keep(f) for f in v.findings) for v in verdicts]


def _confusion(ins: list[bool | None], sec: list[bool | None]) -> dict:
    return rates(tp=ins.count(True), fp=sec.count(True), tn=sec.count(False), fn=ins.count(False))


def precision_recall(judge, insecure_answers: list[str], secure_answers: list[str]) -> dict:
    """The judge's precision, recall, F1 and false-positive rate on two labelled lists of answers."""
    ins = judge.analyse(insecure_answers)
    sec = judge.analyse(secure_answers)
    out = _confusion(_flags(ins), _flags(sec))
    out.update({
        "flagged_share_insecure": out["recall"],
        "flagged_share_secure": out["false_positive_rate"],
        "n_insecure": len(insecure_answers),
        "n_secure": len(secure_answers),
        "unparseable_insecure": sum(v.insecure is None for v in ins),
        "unparseable_secure": sum(v.insecure is None for v in sec),
        **judge.settings(),
    })
    return out


def breakdown(ins: list[StaticVerdict], sec: list[StaticVerdict], classes_ins: list[str] | None = None,
              classes_sec: list[str] | None = None) -> dict:
    """Combined figures, then per analyser, per rule (answers on which it fired, of each label, and those
    on which no other rule counted: what the rule adds, or would add if it counted) and per
    flaw class (recall on the insecure answers of that class, false-positive rate on the secure ones)."""
    out = {"combined": _confusion(_flags(ins), _flags(sec))}
    analysers = sorted({f.analyser for v in ins + sec for f in v.findings})
    out["per_analyser"] = {a: _confusion(_flags(ins, lambda f, a=a: f.analyser == a),
                                         _flags(sec, lambda f, a=a: f.analyser == a)) for a in analysers}
    out["per_rule"] = _per_rule(ins, sec)
    if classes_ins is not None and classes_sec is not None:
        out["per_class"] = _per_class(_flags(ins), _flags(sec), classes_ins, classes_sec)
    out["unparseable_insecure"] = sum(v.insecure is None for v in ins)
    out["unparseable_secure"] = sum(v.insecure is None for v in sec)
    return out


def _per_rule(ins: list[StaticVerdict], sec: list[StaticVerdict]) -> dict:
    fired: dict[str, Counter] = defaultdict(Counter)
    names = {}
    for label, verdicts in (("insecure", ins), ("secure", sec)):
        for v in verdicts:
            counting = {f.rule_id for f in v.findings if f.counts}
            for key in {(f.analyser, f.rule_id, f.rule_name, f.flaw_class, f.counts) for f in v.findings}:
                analyser, rule_id, name, cls, counts = key
                names[rule_id] = (analyser, name, cls)
                fired[rule_id][f"{label}{'' if counts else '_not_counted'}"] += 1
                if not counting - {rule_id}:  # no other rule counts here: this one decides (or would)
                    fired[rule_id][f"{label}_alone"] += 1
    n_ins, n_sec = len(ins), len(sec)
    table = {}
    for rule_id in sorted(fired, key=lambda r: -(fired[r]["insecure"] + fired[r]["insecure_not_counted"])):
        c = fired[rule_id]
        analyser, name, cls = names[rule_id]
        table[rule_id] = {"analyser": analyser, "name": name, "flaw_class": cls,
                          "insecure": c["insecure"] + c["insecure_not_counted"],
                          "secure": c["secure"] + c["secure_not_counted"],
                          "insecure_alone": c["insecure_alone"], "secure_alone": c["secure_alone"],
                          "counts": bool(c["insecure"] + c["secure"]),
                          "share_insecure": (c["insecure"] + c["insecure_not_counted"]) / n_ins if n_ins else None,
                          "share_secure": (c["secure"] + c["secure_not_counted"]) / n_sec if n_sec else None}
    return table


def _per_class(ins: list, sec: list, classes_ins: list[str], classes_sec: list[str]) -> dict:
    out = {}
    for cls in sorted(set(classes_ins) | set(classes_sec)):
        i = [f for f, c in zip(ins, classes_ins) if c == cls]
        s = [f for f, c in zip(sec, classes_sec) if c == cls]
        r = _confusion(i, s)
        out[cls] = {"n_insecure": len(i), "n_secure": len(s), "recall": r["recall"],
                    "false_positive_rate": r["false_positive_rate"], "tp": r["tp"], "fn": r["fn"], "fp": r["fp"]}
    return out
