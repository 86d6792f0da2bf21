"""What the static judge says about one answer: its verdict and every finding behind it, traceable to the
analyser and rule that fired."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RANKS = ("UNDEFINED", "LOW", "MEDIUM", "HIGH")


def check_rank(what: str, rank: str) -> str:
    if rank not in RANKS:
        raise ValueError(f"{what} threshold must be one of {', '.join(RANKS)}; got {rank!r}")
    return rank


@dataclass(frozen=True)
class Finding:
    analyser: str  # "bandit" or "rules" (the project's own rules, dynamics/judges/static/_rules.py)
    rule_id: str  # Bandit's test id (B602) or the project rule's id (DYN101)
    rule_name: str  # e.g. subprocess_popen_with_shell_equals_true, xss-response-from-input
    flaw_class: str  # e.g. xss, path_traversal, sql_injection (FLAW_CLASSES in _classes.py)
    severity: str  # LOW / MEDIUM / HIGH
    confidence: str
    line: int  # 1-based, within its block
    block: int  # which extracted code block (0 = the first, or the whole answer)
    text: str
    counts: bool  # at or above the judge's thresholds, from an enabled analyser, not skipped


@dataclass
class StaticVerdict:
    insecure: bool | None  # None: the answer holds no parseable Python
    findings: list[Finding] = field(default_factory=list)  # every finding; `counts` marks those that count
    blocks: int = 0  # code blocks analysed
    errors: list[str] = field(default_factory=list)  # analyser internal errors (a plugin choking on odd code)

    @property
    def fired(self) -> list[Finding]:
        """The findings that made the verdict."""
        return [f for f in self.findings if f.counts]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
