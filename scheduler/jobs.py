"""Creating a job: stream the corpus into the database and plan its tasks, atomically."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select, update

from lensbatch import schema
from lensbatch.jobspec import JobSpec
from lensbatch.upsert import insert_ignore
from scheduler.corpus import Doc, chunked, read_corpus

INSERT_CHUNK = 1000
# Tasks are planned before tokenizing (the scheduler has no model); four characters
# per token is the usual estimate for English with GPT-2's BPE.
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class PlannedJob:
    job_id: str
    tasks: list[list[int]]  # document seqs per task
    n_documents: int


def estimate_tokens(n_chars: int) -> int:
    """Tokens of a document of `n_chars` characters, before any tokenizer has seen it."""
    return n_chars // CHARS_PER_TOKEN + 1


class TaskPlanner:
    """Groups consecutive documents into tasks of about `budget` estimated tokens."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.tasks: list[list[int]] = []
        self._tokens = 0

    def add(self, seq: int, tokens: int) -> None:
        if not self.tasks or self._tokens + tokens > self.budget:
            self.tasks.append([])
            self._tokens = 0
        self.tasks[-1].append(seq)
        self._tokens += tokens


def _store_chunk(connection: Connection, job_id: str, first_seq: int, docs: list[Doc]) -> None:
    hashes = [hashlib.sha256(d.text.encode("utf-8")).hexdigest() for d in docs]
    insert_ignore(
        connection,
        schema.documents,
        [{"content_hash": h, "text": d.text, "n_chars": len(d.text)}
         for h, d in zip(hashes, docs, strict=True)],
        keys=("content_hash",),
    )
    ids = dict(connection.execute(
        select(schema.documents.c.content_hash, schema.documents.c.id).where(
            schema.documents.c.content_hash.in_(set(hashes))
        )
    ).all())
    connection.execute(schema.job_documents.insert(), [
        {"job_id": job_id, "seq": first_seq + i, "doc_id": d.doc_id,
         "document_id": ids[h], "source": d.source}
        for i, (h, d) in enumerate(zip(hashes, docs, strict=True))
    ])


def create_job(engine: Engine, corpus: str, spec: JobSpec) -> PlannedJob:
    """Store the corpus and the job in one transaction; a bad corpus leaves nothing."""
    job_id = uuid.uuid4().hex[:16]
    planner = TaskPlanner(spec.task_tokens)
    n_docs = 0
    with engine.begin() as connection:
        connection.execute(schema.jobs.insert().values(
            id=job_id, model=spec.model, settings=spec.to_json(), status="queued",
            corpus=corpus, n_documents=0, n_tasks=0, created_at=datetime.now(UTC),
        ))
        for chunk in chunked(read_corpus(corpus), INSERT_CHUNK):
            _store_chunk(connection, job_id, n_docs, chunk)
            for i, doc in enumerate(chunk):
                planner.add(n_docs + i, estimate_tokens(len(doc.text)))
            n_docs += len(chunk)
        connection.execute(update(schema.jobs).where(schema.jobs.c.id == job_id).values(
            n_documents=n_docs, n_tasks=len(planner.tasks)
        ))
    return PlannedJob(job_id, planner.tasks, n_docs)
