"""What a task writes besides `results`: head scores, activation statistics, induction
hits and the job's probe, as rows for lensbatch.store.upsert inside process_task's transaction.

Every table is keyed so that writing the same task twice changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, select

from lensbatch.evaluation import DocEvaluation, ProbeResult
from lensbatch.hooks import hook_kind, hook_layer
from lensbatch.metrics import HEAD_SCORE_NAMES
from lensbatch.store import schema
from lensbatch.store.clock import now
from lensbatch.store.upsert import insert_ignore, upsert

Row = dict[str, Any]
MAX_TOKEN_CHARS = 255


def finite(value: float | None) -> float | None:
    """NaN and inf become NULL, the same on PostgreSQL and SQLite."""
    return value if value is not None and math.isfinite(value) else None


def head_score_rows(job_id: str, seq: int, evaluation: DocEvaluation) -> list[Row]:
    first = evaluation.heads[HEAD_SCORE_NAMES[0]]
    return [
        {"job_id": job_id, "seq": seq, "layer": layer, "head": head,
         **{field: finite(evaluation.heads[field][layer][head]) for field in HEAD_SCORE_NAMES}}
        for layer in range(len(first)) for head in range(len(first[layer]))
    ]


def activation_stat_rows(job_id: str, seq: int, evaluation: DocEvaluation) -> list[Row]:
    rows = []
    for hook, per_stat in evaluation.stats.items():
        layer = hook_layer(hook)
        per_head = hook_kind(hook) != "position"
        for stat, values in per_stat.items():
            for group, value in enumerate(values):
                rows.append({
                    "job_id": job_id, "seq": seq, "hook": hook,
                    "layer": schema.NO_LAYER if layer is None else layer,
                    "head": group if per_head else schema.NO_HEAD,
                    "stat": stat, "value": finite(value),
                })
    return rows


def hit_rows(job_id: str, seq: int, evaluation: DocEvaluation,
             decode: Callable[[int], str]) -> list[Row]:
    return [{"job_id": job_id, "seq": seq, "position": hit.position,
             "token": decode(hit.token)[:MAX_TOKEN_CHARS], "novel": hit.novel}
            for hit in evaluation.hits]


def write_summaries(
    connection: Connection,
    job_id: str,
    seqs: Sequence[int],
    evaluations: Sequence[DocEvaluation],
    decode: Callable[[int], str],
) -> None:
    """Upsert every document's head scores, activation statistics and induction hits."""
    heads: list[Row] = []
    stats: list[Row] = []
    hits: list[Row] = []
    for seq, evaluation in zip(seqs, evaluations, strict=True):
        heads += head_score_rows(job_id, seq, evaluation)
        stats += activation_stat_rows(job_id, seq, evaluation)
        hits += hit_rows(job_id, seq, evaluation, decode)
    upsert(connection, schema.head_scores, heads, keys=("job_id", "seq", "layer", "head"))
    upsert(connection, schema.activation_stats, stats,
           keys=("job_id", "seq", "hook", "layer", "head", "stat"))
    upsert(connection, schema.induction_hit_tokens, hits, keys=("job_id", "seq", "position"))


def has_probe(connection: Connection, job_id: str) -> bool:
    query = select(schema.probes.c.job_id).where(schema.probes.c.job_id == job_id)
    return connection.execute(query).first() is not None


def write_probe(connection: Connection, job_id: str, model: str, probe: ProbeResult) -> None:
    """The job's probe, once: a second writer (another worker, a redelivery) changes nothing."""
    insert_ignore(connection, schema.probes, [{
        "job_id": job_id, "model": model, "n_tokens": probe.n_tokens,
        "first_copy_loss": finite(probe.first_copy_loss),
        "second_copy_loss": finite(probe.second_copy_loss),
        "created_at": now(),
    }], keys=("job_id",))
    insert_ignore(connection, schema.probe_heads, [
        {"job_id": job_id, "layer": layer, "head": head,
         "induction_score": finite(probe.induction_scores[layer][head]),
         "prev_token_score": finite(probe.prev_token_scores[layer][head])}
        for layer in range(len(probe.induction_scores))
        for head in range(len(probe.induction_scores[layer]))
    ], keys=("job_id", "layer", "head"))
