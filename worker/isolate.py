"""Poison documents: isolate the ones that fail, so that the others still get results.

Their attempts are counted in the task's write transaction (lensbatch/store/tasks.py),
which gives up on a document after LENSBATCH_MAX_ATTEMPTS.

A task's documents are evaluated together; when that raises, each is evaluated alone so
that one bad document cannot hold back the others. A document whose metrics are not
finite (NaN or inf loss) fails the same way as one that raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from lensbatch.evaluation import DocEvaluation
from lensbatch.store.tasks import Outcome

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


def evaluate_each(evaluate: Evaluator, todo: Sequence[tuple[int, str]]) -> Outcome:
    """Evaluate each document alone, recording the errors."""
    singles = [_one(evaluate, seq, text) for seq, text in todo]
    return Outcome(
        done=[(s, m) for s, m in singles if isinstance(m, DocEvaluation)],
        failed=[(s, m) for s, m in singles if isinstance(m, str)],
    )


def checked(todo: Sequence[tuple[int, str]], metrics: Sequence[DocEvaluation]) -> Outcome:
    """The documents evaluated together, those with non-finite metrics failed."""
    done: list[tuple[int, DocEvaluation]] = []
    failed: list[tuple[int, str]] = []
    for (seq, _), m in zip(todo, metrics, strict=True):
        try:
            done.append((seq, check_finite(m)))
        except NonFiniteMetrics as exc:
            failed.append((seq, describe(exc)))
    return Outcome(done, failed)


def evaluate_isolating(evaluate: Evaluator, todo: Sequence[tuple[int, str]]) -> Outcome:
    """Evaluate all documents together; on an exception, each one alone."""
    try:
        metrics = evaluate([text for _, text in todo])
    except Exception:  # isolated below; the error is recorded per document
        return evaluate_each(evaluate, todo)
    return checked(todo, metrics)
