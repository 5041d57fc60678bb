"""What the HTML report reads about one job, beyond its summary and head scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Select, case, func, select

from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from lensbatch.store.jobs import job_row
from lensbatch.store.packing import unpack_bits, unpack_positions

# The layer of a hook outside the blocks (hook_embed, ln_final), as activation_means gives it.
NO_LAYER = schema.NO_LAYER


def job_record(engine: Engine, job_id: str) -> dict[str, Any]:
    """The jobs row as a dict, its settings decoded; JobNotFound for a wrong id."""
    with engine.connect() as connection:
        job = dict(job_row(connection, job_id)._mapping)
    if isinstance(job["settings"], str):
        job["settings"] = json.loads(job["settings"])
    return job


def model_card(engine: Engine, model: str) -> Any | None:
    """The models row (name, source, config, weight_shapes), or None if not recorded."""
    with engine.connect() as connection:
        return connection.execute(
            select(schema.models).where(schema.models.c.name == model)).first()


def prepends_bos(engine: Engine, model: str, settings: dict[str, Any]) -> bool:
    """Whether a job's sequences start with BOS: its --bos/--no-bos (in `settings`, the
    job's stored JobSpec), else the model's rule as its card recorded it."""
    bos = JobSpec.from_json(settings).prepend_bos
    if bos is not None:
        return bos
    card = model_card(engine, model)
    arch = ((card.config if card is not None else None) or {}).get("architecture") or {}
    return bool(arch.get("default_prepend_bos", True))


# Every section reads a bounded number of rows, whatever the job's size: the histogram
# is counted in SQL, the scatter plot samples documents by a fixed seq stride, and the
# top documents come from ORDER BY ... LIMIT.
SAMPLE_DOCUMENTS = 5000
MAX_BINS = 40


@dataclass(frozen=True)
class Histogram:
    edges: list[float]  # bins + 1 edges, ascending
    counts: list[int]  # documents per bin (the last bin includes its upper edge)


def loss_histogram(engine: Engine, job_id: str) -> Histogram | None:
    """Per-document loss over every document with one, in equal-width bins (two scans:
    the range, then one count per edge); None when no document has a loss."""
    r = schema.results
    with engine.connect() as connection:
        low, high, count = connection.execute(
            select(func.min(r.c.loss), func.max(r.c.loss), func.count(r.c.loss))
            .where(r.c.job_id == job_id)).one()
        if not count:
            return None
        bins = min(MAX_BINS, max(5, count // 2))
        if high == low:  # one value: one unit around it
            low, high = low - 0.5, high + 0.5
        width = (high - low) / bins
        edges = [low + width * i for i in range(bins)] + [high]
        # below[k]: documents whose loss is under edges[k + 1] (the last: all of them)
        below = connection.execute(select(*(
            func.sum(case((r.c.loss < edge, 1), else_=0)) for edge in edges[1:-1]))
            .where(r.c.job_id == job_id, r.c.loss.is_not(None))).one()
    cumulative = [int(n or 0) for n in below] + [int(count)]
    counts = [b - a for a, b in zip([0, *cumulative[:-1]], cumulative, strict=True)]
    return Histogram(edges, counts)


def _document_query(job_id: str) -> Select[Any]:
    r, jd, d = schema.results, schema.job_documents, schema.documents
    return (select(r.c.seq, r.c.loss, r.c.n_tokens, r.c.induction_hits,
                   r.c.induction_candidates, r.c.induction_novel_hits, jd.c.doc_id,
                   jd.c.source, d.c.n_chars)
            .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
            .join(d, d.c.id == jd.c.document_id)
            .where(r.c.job_id == job_id))


def sample_rows(engine: Engine, job_id: str, limit: int = SAMPLE_DOCUMENTS) -> list[Any]:
    """Up to about `limit` documents with a result, every k-th by seq (the same ones
    each time), in corpus order: the columns of _document_query."""
    with engine.connect() as connection:
        n_documents = int(job_row(connection, job_id).n_documents)
        stride = max(1, -(-n_documents // limit))
        seqs = list(range(0, n_documents, stride))
        rows: list[Any] = []
        for start in range(0, len(seqs), 1000):
            rows += connection.execute(_document_query(job_id).where(
                schema.results.c.seq.in_(seqs[start:start + 1000]))
                .order_by(schema.results.c.seq)).all()
    return rows


def top_induction_rows(engine: Engine, job_id: str, n: int) -> list[Any]:
    """The `n` documents with the most induction hits (ties: corpus order), hits > 0:
    picked from results alone (one scan, a top-n sort), then joined."""
    r = schema.results
    top = (select(r.c.seq).where(r.c.job_id == job_id, r.c.induction_hits > 0)
           .order_by(r.c.induction_hits.desc(), r.c.seq).limit(n))
    with engine.connect() as connection:
        seqs = list(connection.scalars(top))
        rows = {row.seq: row for row in connection.execute(
            _document_query(job_id).where(r.c.seq.in_(seqs)))}
    return [rows[seq] for seq in seqs]


def document_text(engine: Engine, job_id: str, seq: int) -> str:
    d, jd = schema.documents, schema.job_documents
    with engine.connect() as connection:
        return str(connection.scalar(
            select(d.c.text).join(jd, jd.c.document_id == d.c.id)
            .where(jd.c.job_id == job_id, jd.c.seq == seq)))


def hit_positions(engine: Engine, job_id: str, seq: int) -> list[tuple[int, bool]]:
    """A document's induction hits: (position, novel), in position order."""
    table = schema.induction_hit_tokens
    with engine.connect() as connection:
        row = connection.execute(select(table.c.positions, table.c.novel).where(
            table.c.job_id == job_id, table.c.seq == seq)).first()
    if row is None:
        return []
    positions = unpack_positions(row.positions)
    return list(zip(positions, unpack_bits(row.novel, len(positions)), strict=True))


def find_document(engine: Engine, job_id: str, doc_id: str) -> Any | None:
    """A job's document by its corpus id: seq, doc_id, source and text; None if the job
    has no such document."""
    d, jd = schema.documents, schema.job_documents
    with engine.connect() as connection:
        return connection.execute(
            select(jd.c.seq, jd.c.doc_id, jd.c.source, d.c.text)
            .join(d, d.c.id == jd.c.document_id)
            .where(jd.c.job_id == job_id, jd.c.doc_id == doc_id)).first()


def stored_result(engine: Engine, job_id: str, seq: int) -> Any | None:
    """The results row of one document (every stored metric), or None without one."""
    r = schema.results
    with engine.connect() as connection:
        return connection.execute(
            select(r).where(r.c.job_id == job_id, r.c.seq == seq)).first()


def hardest_documents(engine: Engine, job_id: str, n: int) -> list[Any]:
    """The n documents with the highest loss, highest first (ties in corpus order):
    seq, doc_id, source, text and every stored metric."""
    r, jd, d = schema.results, schema.job_documents, schema.documents
    query = (select(r, jd.c.doc_id, jd.c.source, d.c.text)
             .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
             .join(d, d.c.id == jd.c.document_id)
             .where(r.c.job_id == job_id, r.c.loss.is_not(None))
             .order_by(r.c.loss.desc(), r.c.seq).limit(n))
    with engine.connect() as connection:
        return list(connection.execute(query))


def activation_means(engine: Engine, job_id: str) -> list[Any]:
    """The job's activation statistics averaged over its documents (and over the heads
    of a per-head hook), one row per hook and statistic: hook, layer (NO_LAYER outside
    the blocks), stat, mean, n_values (the values averaged) and n_heads (1 for a hook
    without heads); ordered by layer, then hook. [] for a job without --activations."""
    a = schema.activation_stats
    query = (select(a.c.hook, a.c.layer, a.c.stat, func.avg(a.c.value).label("mean"),
                    func.count(a.c.value).label("n_values"),
                    func.count(func.distinct(a.c.head)).label("n_heads"))
             .where(a.c.job_id == job_id)
             .group_by(a.c.hook, a.c.layer, a.c.stat)
             .order_by(a.c.layer, a.c.hook, a.c.stat))
    with engine.connect() as connection:
        return list(connection.execute(query))
