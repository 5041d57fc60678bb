"""A sweep submitted through a real Redis, evaluated by a real `lensbatch worker` into a
real PostgreSQL, then compared, reported and looked into token by token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from lensbatch.store import schema
from tests.cli import lensbatch
from tests.faults import Probe, Worker
from tests.jobdb import repeated_corpus

pytestmark = pytest.mark.integration


def test_submitted_sweep_is_evaluated_and_compared(tmp_path: Path, redis_server,  # type: ignore[no-untyped-def]
                                                   postgres_url: str) -> None:
    env = {"LENSBATCH_BROKER_URL": redis_server.url, "LENSBATCH_DATABASE_URL": postgres_url}
    corpus = repeated_corpus(tmp_path / "c.jsonl", n_docs=8)
    submitted = lensbatch("submit", str(corpus), "-m", "toy-induction", "-m",
                          "toy-induction-ablated", "--task-tokens", "64", env=env)
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.strip()  # one line: the sweep id
    job_lines = [line.split() for line in submitted.stderr.splitlines()
                 if line.startswith("job ")]
    jobs = [line[1].rstrip(":") for line in job_lines]
    assert [line[2] for line in job_lines] == ["toy-induction", "toy-induction-ablated"]
    worker = Worker(env, tmp_path / "worker.log")
    probe = Probe(postgres_url)
    try:
        for job in jobs:
            probe.wait_done(job, timeout=300)
    finally:
        worker.stop()
        probe.close()
    status = lensbatch("status", sweep_id, env=env)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count(" done ") == 2, status.stdout
    rows = [json.loads(line) for line in lensbatch(
        "compare", sweep_id, "--part", "differences", "--format", "jsonl",
        env=env).stdout.splitlines()]
    loss = next(row for row in rows if row["metric"] == "loss")
    assert loss["documents"] == 8 and loss["excludes_zero"] and loss["low"] > 0
    engine = create_engine(postgres_url)
    r = schema.results
    with engine.connect() as connection:
        nll, predictions = connection.execute(
            select(func.sum(r.c.nll_sum), func.sum(r.c.n_predictions))
            .where(r.c.job_id == jobs[1])).one()
    engine.dispose()
    corpus_rows = [json.loads(line) for line in lensbatch(
        "compare", *jobs, "--part", "corpus", "--format", "jsonl", env=env).stdout.splitlines()]
    assert corpus_rows[1]["loss"] == pytest.approx(float(nll) / float(predictions))
    report = lensbatch("report", sweep_id, "--output", str(tmp_path / "sweep.html"), env=env)
    assert report.returncode == 0, report.stderr
    assert jobs[1] in (tmp_path / "sweep.html").read_text()
    tokens = [json.loads(line) for line in lensbatch(
        "tokens", jobs[0], "r0", "--format", "jsonl", env=env).stdout.splitlines()]
    stored = next(json.loads(line) for line in lensbatch(
        "results", jobs[0], "--format", "jsonl", env=env).stdout.splitlines()
        if json.loads(line)["doc_id"] == "r0")
    assert sum(t["hit"] for t in tokens) == stored["induction_hits"]
    assert sum(t["loss"] for t in tokens[1:]) == pytest.approx(stored["nll_sum"], rel=1e-6)
