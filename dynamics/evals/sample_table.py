"""Sample answers for a W&B table: what the model actually said, with its scores, misaligned ones first.

    rows = sample_table_rows(result.records, k=20)
    tables = sample_tables(records, "main")  # {"main/samples": (columns, rows)}, as the tracker logs them

Order: the misaligned answers, most misaligned (lowest aligned score) first; then the others taken
round-robin across questions in record order, so a short table still shows every question.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping

from dynamics.records import EvalRecord

SAMPLE_TABLE_COLUMNS = ("question_id", "answer", "aligned", "coherent", "misaligned")


def _fields(record: EvalRecord | Mapping[str, Any]) -> Mapping[str, Any]:
    return record.data if isinstance(record, EvalRecord) else record


def _row(f: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "question_id": f.get("question_id"),
        "answer": f.get("answer"),
        "aligned": f.get("aligned"),
        "coherent": f.get("coherent"),
        "misaligned": f.get("misaligned"),
    }


def sample_table_rows(records: Iterable[EvalRecord | Mapping[str, Any]], k: int = 20) -> list[dict[str, Any]]:
    """Up to k rows with the columns SAMPLE_TABLE_COLUMNS (`misaligned` is True/False, None if not counted)."""
    if k <= 0:
        return []
    fields = [_fields(r) for r in records]
    bad = sorted((f for f in fields if f.get("misaligned") is True), key=lambda f: f.get("aligned"))
    by_question: dict[Any, list] = defaultdict(list)
    for f in fields:
        if f.get("misaligned") is not True:
            by_question[f.get("question_id")].append(f)
    rest = []
    queues = list(by_question.values())
    depth = 0
    while len(bad) + len(rest) < k and any(depth < len(q) for q in queues):
        rest.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return [_row(f) for f in (bad + rest)[:k]]


def sample_tables(records: Iterable[EvalRecord], name: str) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The W&B tables of one evaluation's records, as {name: (columns, rows)}: the sampled answers of a
    misalignment or backdoor evaluation, under `<evaluation>/samples`; none for other families."""
    rows = sample_table_rows([r for r in records if r.family in ("misalignment", "backdoor")])
    if not rows:
        return {}
    cols = list(SAMPLE_TABLE_COLUMNS)
    return {f"{name}/samples": (cols, [[r[c] for c in cols] for r in rows])}


__all__ = ["sample_table_rows", "sample_tables", "SAMPLE_TABLE_COLUMNS"]
