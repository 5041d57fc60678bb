"""An ablation sweep submitted through a real Redis and evaluated by a real `lensbatch
worker` into a real PostgreSQL gives the numbers `lensbatch run` gives for the same
sweep here, and a mean ablation the same as well: every worker works the mean out from
the same documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli import lensbatch
from tests.faults import Probe, Worker
from tests.jobdb import repeated_corpus

pytestmark = pytest.mark.integration

SWEEP = ("-m", "toy-induction", "--ablate-each-head", "--ablate-layers", "1",
         "--task-tokens", "64")
MEAN = ("-m", "toy-induction", "--ablate", "1.2", "--ablation", "mean", "--task-tokens", "64")
NUMBERS = ("loss_difference", "loss_low", "loss_high", "accuracy_difference",
           "induction_hit_rate_difference")


def jsonl(*args: str, env: dict[str, str]) -> list[dict[str, Any]]:
    result = lensbatch(*args, "--format", "jsonl", env=env)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def same_results(queued: list[dict[str, Any]], local: list[dict[str, Any]]) -> None:
    assert [r["doc_id"] for r in queued] == [r["doc_id"] for r in local]
    for a, b in zip(queued, local, strict=True):
        for key, value in a.items():
            if isinstance(value, float):
                assert value == pytest.approx(b[key], rel=1e-5), key
            else:
                assert value == b[key], key


def test_queued_ablation_sweep_equals_the_local_run(tmp_path: Path, redis_server,  # type: ignore[no-untyped-def]
                                                    postgres_url: str) -> None:
    corpus = str(repeated_corpus(tmp_path / "c.jsonl", n_docs=8))
    queued = {"LENSBATCH_BROKER_URL": redis_server.url, "LENSBATCH_DATABASE_URL": postgres_url}
    local = {"LENSBATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'local.db'}"}
    submitted = lensbatch("submit", corpus, *SWEEP, env=queued)
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.strip()
    jobs = [line.split()[1].rstrip(":") for line in submitted.stderr.splitlines()
            if line.startswith("job ")]
    mean = lensbatch("submit", corpus, *MEAN, env=queued)
    assert mean.returncode == 0, mean.stderr
    mean_job = mean.stdout.strip()
    assert len(jobs) == 5
    worker = Worker(queued, tmp_path / "worker.log")
    probe = Probe(postgres_url)
    try:
        for job in [*jobs, mean_job]:
            probe.wait_done(job, timeout=300)
    finally:
        worker.stop()
        probe.close()
    ran = lensbatch("run", corpus, *SWEEP, env=local)
    assert ran.returncode == 0, ran.stderr
    local_sweep = ran.stdout.strip().splitlines()[-1].split()[-1]
    ran_mean = lensbatch("run", corpus, *MEAN, env=local)
    assert ran_mean.returncode == 0, ran_mean.stderr
    local_mean = ran_mean.stdout.strip().splitlines()[-1].split()[-1]

    from_queue = jsonl("ablations", sweep_id, env=queued)
    from_run = jsonl("ablations", local_sweep, env=local)
    assert [r["head"] for r in from_queue] == [r["head"] for r in from_run]
    assert from_queue[0]["head"] == "1.2" and from_queue[0]["loss_excludes_zero"]
    for a, b in zip(from_queue, from_run, strict=True):
        assert a["documents"] == b["documents"] == 8
        for key in NUMBERS:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-9), key
    same_results(jsonl("results", mean_job, env=queued),
                 jsonl("results", local_mean, env=local))
