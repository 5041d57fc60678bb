"""Storing a corpus, one chunk of documents at a time, inside create_job's transaction.

Texts go into `documents` once (deduplicated by content hash, whichever job brought
them), and each job's list into `job_documents` (the jobs of a sweep share one corpus).
On PostgreSQL a chunk is copied into a temporary table with COPY and moved by INSERT ...
SELECT statements (ten million documents stream in minutes with flat memory); elsewhere
it is inserted row by row. A duplicate document id is caught by job_documents' unique
constraint, and named by file and line. A document's metadata (its other JSONL fields)
goes with its job_documents row.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    literal,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from lensbatch.corpus import Doc
from lensbatch.errors import CorpusError
from lensbatch.store import schema
from lensbatch.store.upsert import INSERTS, insert_ignore

# One chunk of the corpus on its way in (PostgreSQL), dropped when the transaction ends.
staging = Table(
    "staging_documents", MetaData(),
    Column("seq", Integer), Column("doc_id", String(512)), Column("source", Text),
    Column("content_hash", String(64)), Column("text", Text), Column("n_chars", Integer),
    Column("metadata", JSON),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)
STAGING_COLUMNS = tuple(c.name for c in staging.columns)
COPY_STAGING = f"COPY staging_documents ({', '.join(STAGING_COLUMNS)}) FROM STDIN"


def content_hash(text_: str) -> str:
    return hashlib.sha256(text_.encode("utf-8")).hexdigest()


def first_duplicate(connection: Connection, job_id: str, docs: list[Doc]) -> Doc | None:
    """The first of `docs` whose id the job already has, or an earlier one of `docs`."""
    jd = schema.job_documents
    stored = set(connection.scalars(select(jd.c.doc_id).where(
        jd.c.job_id == job_id, jd.c.doc_id.in_({d.doc_id for d in docs}))))
    for doc in docs:
        if doc.doc_id in stored:
            return doc
        stored.add(doc.doc_id)
    return None


def _insert_job_documents(connection: Connection, job_id: str, docs: list[Doc],
                          statement: Any, rows: list[dict[str, Any]] | None = None) -> None:
    """Run `statement` (which adds `docs` to job_documents) under a savepoint; a
    duplicate id becomes one CorpusError naming its file and line."""
    try:
        with connection.begin_nested():
            connection.execute(statement, rows) if rows else connection.execute(statement)
    except IntegrityError:
        duplicate = first_duplicate(connection, job_id, docs)
        if duplicate is None:
            raise
        raise CorpusError(f"{duplicate.where}: duplicate document id "
                          f"{duplicate.doc_id!r}") from None


def _copy_chunk(connection: Connection, job_ids: list[str], first_seq: int,
                docs: list[Doc]) -> None:
    """PostgreSQL: COPY into the staging table, then INSERT ... SELECT (new texts in
    content-hash order, so that no two submits wait on each other's rows in a cycle)."""
    if not connection.dialect.has_table(connection, staging.name):
        staging.create(connection)
    with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        with cursor.copy(COPY_STAGING) as copy:
            for i, doc in enumerate(docs):
                copy.write_row((first_seq + i, doc.doc_id, doc.source,
                                content_hash(doc.text), doc.text, len(doc.text),
                                doc.metadata_json))
    d, jd = schema.documents, schema.job_documents
    connection.execute(
        INSERTS["postgresql"](d).from_select(
            ["content_hash", "text", "n_chars"],
            select(staging.c.content_hash, staging.c.text, staging.c.n_chars)
            .order_by(staging.c.content_hash))
        .on_conflict_do_nothing(index_elements=["content_hash"]))
    for job_id in job_ids:
        moved = (select(literal(job_id), staging.c.seq, staging.c.doc_id, d.c.id,
                        staging.c.source, staging.c.metadata)
                 .join(d, d.c.content_hash == staging.c.content_hash))
        _insert_job_documents(connection, job_id, docs, jd.insert().from_select(
            ["job_id", "seq", "doc_id", "document_id", "source", "metadata"], moved))
    connection.execute(text("TRUNCATE staging_documents"))


def _insert_chunk(connection: Connection, job_ids: list[str], first_seq: int,
                  docs: list[Doc]) -> None:
    """Any other database: executemany, new texts in content-hash order."""
    hashes = [content_hash(doc.text) for doc in docs]
    d = schema.documents
    rows = {h: {"content_hash": h, "text": doc.text, "n_chars": len(doc.text)}
            for h, doc in zip(hashes, docs, strict=True)}
    insert_ignore(connection, d, [rows[h] for h in sorted(rows)], keys=("content_hash",))
    ids = dict(connection.execute(
        select(d.c.content_hash, d.c.id).where(d.c.content_hash.in_(set(hashes)))).all())
    for job_id in job_ids:
        _insert_job_documents(connection, job_id, docs, schema.job_documents.insert(), [
            {"job_id": job_id, "seq": first_seq + i, "doc_id": doc.doc_id,
             "document_id": ids[h], "source": doc.source, "metadata": doc.metadata}
            for i, (h, doc) in enumerate(zip(hashes, docs, strict=True))])


def store_chunk(connection: Connection, job_ids: list[str], first_seq: int,
                docs: list[Doc]) -> None:
    """Store `docs` as documents first_seq, first_seq + 1, ... of every job in job_ids."""
    if connection.dialect.name == "postgresql":
        _copy_chunk(connection, job_ids, first_seq, docs)
    else:
        _insert_chunk(connection, job_ids, first_seq, docs)
