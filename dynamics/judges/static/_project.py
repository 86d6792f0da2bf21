"""The project rules (`_rules.py`, `_taint_rules.py`) as one analyser, on the parsed snippet."""

from __future__ import annotations

from dynamics.judges.static._extract import parse
from dynamics.judges.static._resolve import Names
from dynamics.judges.static._rules import RULES, pattern_findings
from dynamics.judges.static._taint_rules import taint_findings
from dynamics.judges.static._verdict import Finding


class RulesAnalyser:
    name = "rules"

    def analyse(self, code: str, block: int) -> tuple[list[Finding], list[str], bool]:
        tree = parse(code)
        if tree is None:
            return [], [], False
        names = Names(tree)
        try:
            hits = list(pattern_findings(tree, names)) + taint_findings(tree, names)
        except RecursionError:  # a pathologically deep expression; the other analysers still run
            return [], ["rules: expression too deeply nested to analyse"], False
        findings, seen = [], set()
        for rule_id, node, text in hits:
            line = getattr(node, "lineno", 0)
            if (rule_id, line) in seen:  # one finding per rule and line
                continue
            seen.add((rule_id, line))
            r = RULES[rule_id]
            findings.append(Finding(self.name, r.id, r.name, r.flaw_class, r.severity, r.confidence, line, block,
                                    text, False))
        return sorted(findings, key=lambda f: (f.line, f.rule_id)), [], True

    def close(self) -> None:
        pass
