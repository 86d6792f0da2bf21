"""How many of an evaluation's answers the judge actually judged.

A judgment that failed (HTTP errors past the retries, a malformed reply) is stored as null with its error,
never as a score, so a metric is computed on the answers that were judged. When that is fewer than a
configured share (`eval.judge.min_judged_fraction`), the metric stands on less than the design asked for,
and the run says so: `<evaluation>/judged_fraction` in the store (its `n` = the answers) and in W&B, a
warning line on the console, and a W&B alert.

Every family marks a judgment's failure the same way: a record field named `<judgment>_error`
(`aligned_error`, `coherent_error`, `judge_error`), None when the judgment was made; and its verdict in
`<judgment>` (`aligned`, `coherent`) or, for `judge_error`, `verdict` / `judge_answer`: None when the
judge's reply held none (a judge that answers without a number counts as not judged, not as judged).
"""

from __future__ import annotations

from dataclasses import dataclass

from dynamics.records import EvalRecord


@dataclass(frozen=True)
class JudgeCoverage:
    judged: int  # answers all of whose judgments were made
    answers: int  # answers that needed a judgment
    errors: tuple[str, ...]  # the distinct failure messages (first few)

    @property
    def fraction(self) -> float:
        return self.judged / self.answers if self.answers else 1.0

    def warning(self, evaluation: str, step: int, minimum: float) -> str | None:
        """The console line when fewer than `minimum` of the answers were judged; else None."""
        if self.fraction >= minimum:
            return None
        return (f"warning: step {step} {evaluation}: only {self.judged} of {self.answers} answers judged "
                f"({self.fraction:.0%}, below eval.judge.min_judged_fraction={minimum:g}); its metrics stand on "
                "those; why: " + " | ".join(self.errors))


# the verdict field(s) of a judgment whose error field is not simply `<verdict>_error`
VERDICT_FIELDS = {"judge_error": ("verdict", "judge_answer")}


def _verdict_fields(error_key: str, data: dict) -> list[str]:
    names = VERDICT_FIELDS.get(error_key, (error_key[: -len("_error")],))
    return [n for n in names if n in data]


def judge_coverage(records: list[EvalRecord], max_errors: int = 3) -> JudgeCoverage | None:
    """Judged / answers over the records that carry a judgment (None when none does: no judge). An answer
    is judged when each of its judgments has a verdict: a judgment that failed, and one whose reply held
    no verdict (no score among its log-probabilities, a word outside the allowed ones), are not."""
    judged = answers = 0
    errors: list[str] = []
    for r in records:
        keys = [k for k in r.data if k.endswith("_error")]
        if not keys:
            continue
        answers += 1
        failed = [str(r.data[k]) for k in keys if r.data[k] is not None]
        failed += [f"{v}: no verdict in the judge's reply" + (f" ({v}_mass {r.data[f'{v}_mass']:.2f})"
                                                              if isinstance(r.data.get(f"{v}_mass"), float) else "")
                   + " (below the mass cut-off: how CODE and REFUSAL answers drop out, or a judge that scores nothing)"
                   for k in keys if r.data[k] is None for v in _verdict_fields(k, r.data) if r.data[v] is None]
        judged += not failed
        for e in failed:
            if e not in errors and len(errors) < max_errors:
                errors.append(e[:200])
    return JudgeCoverage(judged, answers, tuple(errors)) if answers else None
