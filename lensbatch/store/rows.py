"""What a task writes besides `results`: induction hits, activation statistics, the
per-document head scores of a job that keeps them, and the job's probe, as rows for
lensbatch.store.upsert inside the task's write transaction (lensbatch/store/tasks.py).

Only documents whose results row the transaction created get these rows, and every
table is keyed, so that writing the same task twice changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from lensbatch.evaluation import DocEvaluation, ProbeResult
from lensbatch.hooks import hook_kind, hook_layer
from lensbatch.metrics import HEAD_SCORE_NAMES
from lensbatch.store import schema
from lensbatch.store.clock import now
from lensbatch.store.packing import pack_bits, pack_floats, pack_positions
from lensbatch.store.upsert import insert_ignore, upsert

Row = dict[str, Any]


def finite(value: float | None) -> float | None:
    """NaN and inf become NULL, the same on PostgreSQL and SQLite."""
    return value if value is not None and math.isfinite(value) else None


def head_score_row(job_id: str, seq: int, evaluation: DocEvaluation) -> Row:
    """One document's per-head scores, packed (lensbatch/store/packing.py). A layer
    without attention (a hybrid model's) has no scores: null for each of its heads."""
    first = evaluation.heads[HEAD_SCORE_NAMES[0]]
    n_heads = max((len(layer) for layer in first), default=0)

    def grid(name: str) -> list[list[float | None]]:
        return [layer or [None] * n_heads for layer in evaluation.heads[name]]

    return {"job_id": job_id, "seq": seq, "n_layers": len(first), "n_heads": n_heads,
            **{name: pack_floats(grid(name)) for name in HEAD_SCORE_NAMES}}


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


def hit_row(job_id: str, seq: int, evaluation: DocEvaluation) -> Row | None:
    """One document's induction hits, packed; None for a document without hits."""
    hits = sorted(evaluation.hits, key=lambda hit: hit.position)
    if not hits:
        return None
    return {"job_id": job_id, "seq": seq,
            "positions": pack_positions([hit.position for hit in hits]),
            "novel": pack_bits([hit.novel for hit in hits])}


def write_summaries(
    connection: Connection,
    job_id: str,
    done: Sequence[tuple[int, DocEvaluation]],
    per_document_heads: bool,
) -> None:
    """Upsert the documents' induction hits, activation statistics and, when the job
    keeps them, per-head scores."""
    stats = [row for seq, e in done for row in activation_stat_rows(job_id, seq, e)]
    hits = [row for seq, e in done if (row := hit_row(job_id, seq, e)) is not None]
    if per_document_heads:
        upsert(connection, schema.head_scores,
               [head_score_row(job_id, seq, e) for seq, e in done], keys=("job_id", "seq"))
    upsert(connection, schema.activation_stats, stats,
           keys=("job_id", "seq", "hook", "layer", "head", "stat"))
    upsert(connection, schema.induction_hit_tokens, hits, keys=("job_id", "seq"))


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
