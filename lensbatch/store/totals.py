"""A job's counters: its progress (documents done, every summed metric) and its per-head
sums, kept by the transaction that writes each result, so that `status`, `jobs`, the
progress bar, `heads`, the report and the views read a few rows instead of the job's
results.

Exactly once: a task adds to the counters only the documents whose results row its own
transaction created (lensbatch/store/tasks.py inserts results with ON CONFLICT DO
NOTHING ... RETURNING), so a redelivered task, or the same task run twice at once,
adds nothing the second time.

Sharded: each transaction adds to one of SHARDS rows per counter, picked at random, so
that concurrent writers of a job rarely wait on each other's row locks; readers sum
over the shards.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Connection, ScalarSelect, cast, func, select

from lensbatch.evaluation import DocEvaluation, DocMetrics
from lensbatch.metrics import HEAD_SCORE_NAMES, MOMENTS, SUMMED_METRICS, moment_name
from lensbatch.store import schema
from lensbatch.store.upsert import increment

SHARDS = 16
SUMMED = tuple(m.name for m in SUMMED_METRICS)

Row = dict[str, Any]


def progress_row(job_id: str, shard: int, metrics: Sequence[DocMetrics]) -> Row:
    """What `metrics` (one per new result) add to a job's progress: every summed metric,
    and the products the rates' intervals need (MOMENTS)."""
    return {"job_id": job_id, "shard": shard, "documents_done": len(metrics),
            **{name: sum(getattr(m, name) for m in metrics) for name in SUMMED},
            **{moment_name((a, b)): math.fsum(float(getattr(m, a)) * getattr(m, b)
                                              for m in metrics) for a, b in MOMENTS}}


def head_total_rows(job_id: str, shard: int, heads: Sequence[dict[str, Any]]) -> list[Row]:
    """What documents' per-head scores (DocEvaluation.heads, [layer][head] per score)
    add to a job's per-head sums, one row per (layer, head) in that order. A null or
    non-finite score leaves the document out of that score's sum and count."""
    if not heads:
        return []
    grid = heads[0].get(HEAD_SCORE_NAMES[0], [])  # none for a job without head scores
    rows = []
    for layer in range(len(grid)):
        for head in range(len(grid[layer])):
            row: Row = {"job_id": job_id, "shard": shard, "layer": layer, "head": head,
                        "n_documents": len(heads)}
            for name in HEAD_SCORE_NAMES:
                values = [v for doc in heads if (v := doc[name][layer][head]) is not None
                          and math.isfinite(v)]
                row[f"{name}_sum"] = math.fsum(values)
                row[f"{name}_count"] = len(values)
            rows.append(row)
    return rows


def add_to_totals(connection: Connection, job_id: str,
                  evaluations: Sequence[DocEvaluation]) -> None:
    """Add new results to the job's progress and per-head sums (one shard of each)."""
    if not evaluations:
        return
    shard = random.randrange(SHARDS)
    increment(connection, schema.job_progress,
              [progress_row(job_id, shard, [e.metrics for e in evaluations])],
              keys=("job_id", "shard"))
    increment(connection, schema.head_totals,
              head_total_rows(job_id, shard, [e.heads for e in evaluations]),
              keys=("job_id", "shard", "layer", "head"))


def documents_done(job_id: str) -> ScalarSelect[Any]:
    """The job's documents with a result, as a scalar subquery."""
    p = schema.job_progress
    return (select(func.coalesce(func.sum(p.c.documents_done), 0))
            .where(p.c.job_id == job_id).scalar_subquery())


def progress(connection: Connection,
             job_ids: Sequence[str]) -> dict[str, tuple[int, dict[str, float]]]:
    """Per job: documents done and every summed metric (zeros for a job with none)."""
    p = schema.job_progress
    found = {job_id: (0, dict.fromkeys(SUMMED, 0.0)) for job_id in job_ids}
    query = (select(p.c.job_id, func.sum(p.c.documents_done),
                    *(func.sum(p.c[name]) for name in SUMMED))
             .where(p.c.job_id.in_(list(job_ids))).group_by(p.c.job_id))
    for row in connection.execute(query):
        found[row[0]] = (int(row[1]), {name: float(value) for name, value
                                       in zip(SUMMED, row[2:], strict=True)})
    return found


def moments(connection: Connection, job_id: str) -> dict[str, float]:
    """The job's sums of products over its documents (MOMENTS, by moment_name)."""
    p = schema.job_progress
    names = [moment_name(pair) for pair in MOMENTS]
    row = connection.execute(select(*(func.coalesce(func.sum(p.c[name]), 0.0)
                                      for name in names)).where(p.c.job_id == job_id)).one()
    return {name: float(value) for name, value in zip(names, row, strict=True)}


def head_mean_rows(connection: Connection, job_id: str) -> list[Any]:
    """Per (layer, head), in that order: n_documents and every head score's mean over
    the documents where it is not null (null where there are none), as SQL's AVG over
    per-document rows gives it."""
    t = schema.head_totals
    means = [(func.sum(t.c[f"{name}_sum"])
              / func.nullif(func.sum(t.c[f"{name}_count"]), 0)).label(name)
             for name in HEAD_SCORE_NAMES]
    return list(connection.execute(
        select(t.c.layer, t.c.head,
               cast(func.sum(t.c.n_documents), BigInteger).label("n_documents"), *means)
        .where(t.c.job_id == job_id).group_by(t.c.layer, t.c.head)
        .order_by(t.c.layer, t.c.head)))
