"""A local run stopped by Ctrl-C and continued with `lensbatch run --resume JOB`, with no
broker, on SQLite and on PostgreSQL: the results written before the interrupt are kept,
none is recorded lost, and the continued job ends with exactly one result per document,
each the same as an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Table, create_engine, func, select

from lensbatch.metrics import LISTED_METRICS
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.head_queries import head_rows
from tests.cli import LENSBATCH, lensbatch

pytestmark = pytest.mark.integration

CORPUS = str(Path(__file__).resolve().parents[2] / "corpus" / "sample.jsonl")
N_DOCUMENTS = 36
MODEL = "toy-induction"


def interrupted_run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`lensbatch run` on the sample corpus, sent SIGINT once its progress shows some
    documents done and not all."""
    process = subprocess.Popen([LENSBATCH, "run", CORPUS, "--model", MODEL],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    assert process.stderr is not None
    lines = []
    for line in process.stderr:  # plain progress lines: stderr is a pipe
        lines.append(line)
        done = line.partition("documents=")[2].partition("/")[0]
        if done.isdigit() and 0 < int(done) < N_DOCUMENTS:
            process.send_signal(signal.SIGINT)
            break
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout,
                                       "".join(lines) + stderr)


def per_document(url: str, job_id: str) -> dict[str, tuple[object, ...]]:
    """Every result row of the job, by doc_id: the listed metrics."""
    r, jd = schema.results, schema.job_documents
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(jd.c.doc_id, *(r.c[name] for name in LISTED_METRICS))
            .join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
            .where(r.c.job_id == job_id)).all()
    engine.dispose()
    by_id = {row[0]: tuple(row[1:]) for row in rows}
    assert len(by_id) == len(rows)  # one row per document
    return by_id


def count(url: str, table: Table, job_id: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = int(connection.scalar(select(func.count()).select_from(table).where(
            table.c.job_id == job_id)) or 0)
    engine.dispose()
    return found


@dataclass(frozen=True)
class Reference:
    """An uninterrupted run's numbers: per document, and per head."""

    documents: dict[str, tuple[object, ...]]
    heads: list[dict[str, object]]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'lensbatch.db'}"
    whole = lensbatch("run", CORPUS, "--model", MODEL, env={"LENSBATCH_DATABASE_URL": url})
    assert whole.returncode == 0, whole.stderr
    job_id = whole.stdout.strip().splitlines()[-1].split()[-1]
    engine = ensure_schema(url)
    heads = head_rows(engine, job_id)
    engine.dispose()
    return Reference(per_document(url, job_id), heads)


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_interrupted_run_continues_to_the_uninterrupted_numbers(
        database: str, reference: Reference, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(database)
    ensure_schema(url).dispose()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LENSBATCH_DATABASE_URL": url,
           "LENSBATCH_BROKER_URL": "redis://127.0.0.1:1/0",  # no broker anywhere
           "PATH": f"{Path(LENSBATCH).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    stopped = interrupted_run(env)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: job ") and "all kept" in last, stopped.stderr
    command = last.partition("continue with: ")[2]
    job_id = last.split()[2]
    assert command == f"lensbatch run --resume {job_id}"
    kept = per_document(url, job_id)
    assert 0 < len(kept) < N_DOCUMENTS
    assert count(url, schema.document_failures, job_id) == 0  # nothing recorded lost
    engine = create_engine(url)
    with engine.connect() as connection:  # tasks sized for one process: progress moves
        assert int(connection.scalar(select(schema.jobs.c.n_tasks).where(
            schema.jobs.c.id == job_id)) or 0) >= 12
    engine.dispose()
    assert "running" in lensbatch("status", job_id, env=env).stdout

    # `resume` without a broker names the local way
    resumed_queue = lensbatch("resume", job_id, env=env)
    assert resumed_queue.returncode == 2 and command in resumed_queue.stderr

    continued = subprocess.run(["bash", "-c", command], env=env, capture_output=True,
                               text=True, timeout=600)
    assert continued.returncode == 0, continued.stderr
    assert f"results: lensbatch results {job_id}" in continued.stdout
    assert "runner=local-process" in continued.stderr
    # the continued run starts from the documents kept
    first = next(line for line in continued.stderr.splitlines() if line.startswith("job="))
    assert f"documents={len(kept)}/{N_DOCUMENTS}" in first
    resumed = per_document(url, job_id)
    assert len(resumed) == N_DOCUMENTS == count(url, schema.results, job_id)
    assert all(resumed[doc] == numbers for doc, numbers in kept.items())
    assert "done" in lensbatch("status", job_id, env=env).stdout

    assert resumed.keys() == reference.documents.keys()
    for doc_id, numbers in reference.documents.items():
        assert resumed[doc_id] == pytest.approx(numbers, rel=1e-5), doc_id
    engine = ensure_schema(url)
    heads = head_rows(engine, job_id)
    engine.dispose()
    assert len(heads) == len(reference.heads) > 0
    for ours, theirs in zip(heads, reference.heads, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-5)

    # a finished job: nothing left, nothing changes
    again = lensbatch("run", "--resume", job_id, env=env)
    assert again.returncode == 0, again.stderr
    assert per_document(url, job_id) == resumed
    assert count(url, schema.results, job_id) == N_DOCUMENTS
