"""Reading a job's per-head numbers back: the induction probe, the per-head means over
documents (from the job's per-head sums), and each document's packed head scores."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from lensbatch.metrics import HEAD_SCORE_NAMES, PROBE_SCORES
from lensbatch.store import schema
from lensbatch.store.packing import unpack_heads
from lensbatch.store.totals import head_mean_rows


@dataclass(frozen=True)
class ProbeSummary:
    model: str
    n_tokens: int
    first_copy_loss: float | None
    second_copy_loss: float | None


def job_probe(engine: Engine, job_id: str) -> ProbeSummary | None:
    p = schema.probes
    with engine.connect() as connection:
        row = connection.execute(select(p).where(p.c.job_id == job_id)).first()
    if row is None:
        return None
    return ProbeSummary(row.model, row.n_tokens, row.first_copy_loss, row.second_copy_loss)


def probe_head_rows(engine: Engine, job_id: str) -> list[Any]:
    """The probe's per-head scores: layer, head and PROBE_SCORES."""
    ph = schema.probe_heads
    with engine.connect() as connection:
        return list(connection.execute(
            select(ph.c.layer, ph.c.head, *(ph.c[name] for name in PROBE_SCORES))
            .where(ph.c.job_id == job_id).order_by(ph.c.layer, ph.c.head)))


def head_means(engine: Engine, job_id: str) -> list[Any]:
    """Per (layer, head): every head score averaged over the job's documents (a score
    that is null for a document, such as induction_score without a repeated token,
    leaves that document out), and n_documents; from the job's per-head sums."""
    with engine.connect() as connection:
        return head_mean_rows(connection, job_id)


# `lensbatch heads`: per-head means over the job's documents, and the probe's scores.
HEAD_COLUMNS = ("layer", "head", "n_documents", *HEAD_SCORE_NAMES,
                *(f"probe_{name}" for name in PROBE_SCORES))


def head_rows(engine: Engine, job_id: str) -> list[dict[str, Any]]:
    """One dict per (layer, head): HEAD_COLUMNS. Probe scores may come alone."""
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for row in head_means(engine, job_id):
        rows[(row.layer, row.head)] = {**dict.fromkeys(HEAD_COLUMNS), **row._mapping}
    for row in probe_head_rows(engine, job_id):
        entry = rows.setdefault((row.layer, row.head), {
            **dict.fromkeys(HEAD_COLUMNS), "layer": row.layer, "head": row.head,
            "n_documents": 0})
        entry.update({f"probe_{name}": row._mapping[name] for name in PROBE_SCORES})
    return [{key: rows[k][key] for key in HEAD_COLUMNS} for k in sorted(rows)]


# `lensbatch heads --per-document`: every document's per-head scores, unpacked.
DOCUMENT_HEAD_COLUMNS = ("doc_id", "layer", "head", *HEAD_SCORE_NAMES)


def document_head_rows(engine: Engine, job_id: str) -> Iterator[dict[str, Any]]:
    """One dict per (document, layer, head) of a job that kept per-document head
    scores (`--head-scores document`), in corpus order: DOCUMENT_HEAD_COLUMNS."""
    h, jd = schema.head_scores, schema.job_documents
    query = (select(jd.c.doc_id, h).join(jd, (jd.c.job_id == h.c.job_id)
                                         & (jd.c.seq == h.c.seq))
             .where(h.c.job_id == job_id).order_by(h.c.seq))
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=1000).execute(
            query)
        for row in result:
            packed = [row._mapping[name] for name in HEAD_SCORE_NAMES]
            for layer, head, scores in unpack_heads(row.n_heads, packed):
                yield {"doc_id": row.doc_id, "layer": layer, "head": head,
                       **dict(zip(HEAD_SCORE_NAMES, scores, strict=True))}


def has_document_heads(engine: Engine, job_id: str) -> bool:
    h = schema.head_scores
    with engine.connect() as connection:
        return connection.execute(select(h.c.seq).where(h.c.job_id == job_id)
                                  .limit(1)).first() is not None
