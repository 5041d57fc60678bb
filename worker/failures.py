"""Poison documents: isolate the ones that fail, count their attempts, give up after a bound.

A task's documents are evaluated together; when that raises, each is evaluated alone so
that one bad document cannot hold back the others. A document whose metrics are not
finite (NaN or inf loss) fails the same way as one that raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, func, select

from lensbatch import schema
from lensbatch.upsert import INSERTS
from worker.documents import DocEvaluation

# Evaluates texts and returns one DocEvaluation per text, in order.
Evaluator = Callable[[list[str]], list[DocEvaluation]]

MAX_ERROR_CHARS = 500


class NonFiniteMetrics(ValueError):
    """The model produced NaN or inf for a document."""


class DocumentsFailed(RuntimeError):
    """Some documents failed this attempt and have attempts left: retry the task."""

    def __init__(self, job_id: str, seqs: list[int], written: int) -> None:
        super().__init__(f"job {job_id}: documents {seqs} failed; will retry")
        self.job_id = job_id
        self.seqs = seqs
        self.written = written  # results committed before the failures were recorded


@dataclass(frozen=True)
class Outcome:
    done: list[tuple[int, DocEvaluation]]  # (seq, metrics and summaries)
    failed: list[tuple[int, str]]  # (seq, error message)


def check_finite(evaluation: DocEvaluation) -> DocEvaluation:
    nll_sum = evaluation.metrics.nll_sum
    if not math.isfinite(nll_sum):
        raise NonFiniteMetrics(f"non-finite loss (nll_sum={nll_sum})")
    return evaluation


def describe(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:MAX_ERROR_CHARS]


def _one(
    evaluate: Evaluator, seq: int, text: str
) -> tuple[int, DocEvaluation] | tuple[int, str]:
    try:
        return seq, check_finite(evaluate([text])[0])
    except Exception as exc:  # any model failure is this document's failure
        return seq, describe(exc)


def evaluate_isolating(evaluate: Evaluator, todo: Sequence[tuple[int, str]]) -> Outcome:
    """Evaluate all documents together; on an exception, each one alone."""
    try:
        metrics = evaluate([text for _, text in todo])
    except Exception:  # isolated below; the error is recorded per document
        singles = [_one(evaluate, seq, text) for seq, text in todo]
        return Outcome(
            done=[(s, m) for s, m in singles if isinstance(m, DocEvaluation)],
            failed=[(s, m) for s, m in singles if isinstance(m, str)],
        )
    done: list[tuple[int, DocEvaluation]] = []
    failed: list[tuple[int, str]] = []
    for (seq, _), m in zip(todo, metrics, strict=True):
        try:
            done.append((seq, check_finite(m)))
        except NonFiniteMetrics as exc:
            failed.append((seq, describe(exc)))
    return Outcome(done, failed)


def record_failures(
    connection: Connection, job_id: str, failed: list[tuple[int, str]], max_attempts: int
) -> list[int]:
    """Count one more attempt for each failed document; return those with attempts left."""
    if not failed:
        return []
    table = schema.document_failures
    insert = INSERTS[connection.dialect.name](table)
    statement = insert.on_conflict_do_update(
        index_elements=["job_id", "seq"],
        set_={
            "attempts": table.c.attempts + 1,
            "final": table.c.attempts + 1 >= max_attempts,
            "error": insert.excluded.error,
            "updated_at": insert.excluded.updated_at,
        },
    )
    stamp = datetime.now(UTC)
    connection.execute(statement, [
        {"job_id": job_id, "seq": seq, "attempts": 1, "final": max_attempts <= 1,
         "error": error, "updated_at": stamp}
        for seq, error in failed
    ])
    seqs = [seq for seq, _ in failed]
    return list(connection.scalars(
        select(table.c.seq).where(table.c.job_id == job_id, table.c.seq.in_(seqs),
                                  table.c.final.is_(False)).order_by(table.c.seq)
    ))


def count_final_failures(connection: Connection, job_id: str) -> int:
    table = schema.document_failures
    return int(connection.scalar(
        select(func.count()).select_from(table).where(
            table.c.job_id == job_id, table.c.final.is_(True))
    ) or 0)
