"""What the HTML report reads about one job, beyond its summary and head scores."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, select

from lensbatch.store import schema
from lensbatch.store.jobs import job_row


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


def document_rows(engine: Engine, job_id: str) -> list[Any]:
    """Per document with a result: seq, loss, n_tokens, the induction counts, doc_id,
    source and n_chars, in corpus order."""
    r, jd, d = schema.results, schema.job_documents, schema.documents
    query = (select(r.c.seq, r.c.loss, r.c.n_tokens, r.c.induction_hits,
                    r.c.induction_candidates, r.c.induction_novel_hits, jd.c.doc_id,
                    jd.c.source, d.c.n_chars)
             .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
             .join(d, d.c.id == jd.c.document_id)
             .where(r.c.job_id == job_id).order_by(r.c.seq))
    with engine.connect() as connection:
        return list(connection.execute(query))


def document_text(engine: Engine, job_id: str, seq: int) -> str:
    d, jd = schema.documents, schema.job_documents
    with engine.connect() as connection:
        return str(connection.scalar(
            select(d.c.text).join(jd, jd.c.document_id == d.c.id)
            .where(jd.c.job_id == job_id, jd.c.seq == seq)))


def hit_tokens(engine: Engine, job_id: str, seq: int) -> list[Any]:
    """A document's induction hits: position, token and novel, in position order."""
    table = schema.induction_hit_tokens
    with engine.connect() as connection:
        return list(connection.execute(
            select(table.c.position, table.c.token, table.c.novel)
            .where(table.c.job_id == job_id, table.c.seq == seq)
            .order_by(table.c.position)))


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
