"""Top activations in the database: written once per document whatever the number of
runs of a task, equal to a clean run; read back by `top` and `neurons`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from lensbatch.jobspec import JobSpec
from lensbatch.store import schema
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import create_job
from lensbatch.store.tasks import PartialWrite, write_task
from lensbatch.store.top_packing import pack_histogram, unpack_histogram
from lensbatch.store.top_queries import neuron_rows, neuron_top
from lensbatch.top import BINS
from tests.cli import lensbatch
from worker.service import Runtime, TaskRun, process_task

TEXTS = ["The lamp is lit, the lamp is lit, all is well at the lighthouse.",
         "Hello TransformerLens!",
         "Keepers keep logs. Keepers keep logs. Keepers keep logs.",
         "The keeper climbed the stairs; the keeper lit the lamp; the lamp shone.",
         "Gulls over the rock, and the lighthouse over the gulls."]
SPEC = JobSpec(model="toy-induction", task_tokens=30,
               top_activations=("hook_embed", "z1"), top_k=4)


def new_job(tmp_path: Path, url: str) -> tuple[Engine, str, list[list[int]]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                              for i, t in enumerate(TEXTS)))
    engine = ensure_schema(url)
    planned = create_job(engine, str(corpus), SPEC)
    assert len(planned.tasks) > 1
    return engine, planned.job_id, list(planned.tasks)


def top_rows(engine: Engine, job_id: str) -> list[tuple]:
    t = schema.top_activations
    with engine.connect() as connection:
        return sorted(tuple(r)[1:] for r in connection.execute(
            select(t).where(t.c.job_id == job_id)))


def test_a_task_run_twice_ends_as_a_clean_run(tmp_path: Path) -> None:
    runtime = Runtime(device="cpu")
    engine, clean, tasks = new_job(tmp_path / "a", f"sqlite:///{tmp_path}/a.db")
    for seqs in tasks:
        process_task(engine, clean, seqs, runtime)
    twice_engine, twice, _ = new_job(tmp_path / "b", f"sqlite:///{tmp_path}/b.db")
    for seqs in tasks + tasks[::-1]:  # every task again, after the job's end
        process_task(twice_engine, twice, seqs, runtime)
    expected = top_rows(engine, clean)
    assert len(expected) == 512 + 4 * 128
    assert top_rows(twice_engine, twice) == expected
    t = schema.top_activations
    with engine.connect() as connection:
        positions = set(connection.scalars(select(t.c.n_positions).where(t.c.job_id == clean)))
        tokens = connection.scalar(select(func.sum(schema.results.c.n_tokens))
                                   .where(schema.results.c.job_id == clean))
    assert positions == {tokens}  # every position of every document counted once


def test_a_partial_write_writes_nothing_and_the_rest_is_evaluated_again(
        tmp_path: Path) -> None:
    """Another writer gave one of the task's documents its result first: the task's
    write is rolled back whole and its other documents are evaluated again."""
    runtime = Runtime(device="cpu")
    engine, clean, tasks = new_job(tmp_path / "a", f"sqlite:///{tmp_path}/a.db")
    for seqs in tasks:
        process_task(engine, clean, seqs, runtime)
    other_engine, job_id, _ = new_job(tmp_path / "b", f"sqlite:///{tmp_path}/b.db")
    seqs = tasks[0]
    assert len(seqs) > 1
    process_task(other_engine, job_id, seqs[:1], runtime)  # the "other writer"
    from lensbatch.store.attempts import Claimed
    from worker.engine.models import load_model

    with other_engine.connect() as connection:
        texts = {r.seq: r.text for r in connection.execute(
            select(schema.job_documents.c.seq, schema.documents.c.text)
            .join(schema.documents, schema.documents.c.id == schema.job_documents.c.document_id)
            .where(schema.job_documents.c.job_id == job_id))}
    run = TaskRun(other_engine, job_id, SPEC, load_model("toy-induction", "cpu", "float32"),
                  runtime, True)
    outcome, written = run._evaluate([(seq, texts[seq]) for seq in seqs])
    with pytest.raises(PartialWrite) as raised:
        write_task(other_engine, job_id, written, runtime.claimer)
    assert raised.value.seqs == seqs[1:]
    done, _ = run.write(Claimed([(seq, texts[seq]) for seq in seqs]))
    assert done.written == len(seqs) - 1
    for rest in tasks[1:]:
        process_task(other_engine, job_id, rest, runtime)
    assert top_rows(other_engine, job_id) == top_rows(engine, clean)


def test_histogram_packing_takes_the_narrowest_width() -> None:
    for top, width in ((65535, 2), (65536, 4), (1 << 32, 8)):
        counts = np.zeros(BINS, dtype=np.int64)
        counts[3] = top
        packed = pack_histogram(counts)
        assert len(packed) == BINS * width
        assert np.array_equal(unpack_histogram(packed), counts)


def test_top_and_neurons_read_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    engine, job_id, tasks = new_job(tmp_path, url)
    for seqs in tasks:
        process_task(engine, job_id, seqs, Runtime(device="cpu"))
    ranked = neuron_rows(engine, job_id, "hook_embed", limit=5)
    assert len(ranked) == 5
    highest = [r.max_value or 0.0 for r in ranked]
    assert highest == sorted(highest, reverse=True)
    best = neuron_top(engine, job_id, "hook_embed", ranked[0].neuron)
    assert best.contexts[0].value == ranked[0].max_value
    assert sum(best.histogram) == best.n_positions
    env = {"LENSBATCH_DATABASE_URL": url}
    shown = lensbatch("top", job_id, "hook_embed", str(ranked[0].neuron), "--format", "jsonl",
                      env=env)
    assert shown.returncode == 0, shown.stderr
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["position"] for r in rows] == [c.position for c in best.contexts]
    assert all(r["token"] for r in rows)
    table = lensbatch("top", job_id, "z1", "2.5", env=env)
    assert table.returncode == 0 and "blocks.1.attn.hook_z neuron head 2, index 5" in table.stdout
    marked = lensbatch("top", job_id, "hook_embed", str(ranked[0].neuron), env=env).stdout
    assert f"[[{rows[0]['token']}]]" in marked  # not a terminal: the token between [[ ]]
    listed = lensbatch("neurons", job_id, "hook_embed", "--limit", "3", "--format", "jsonl",
                       env=env)
    assert [json.loads(line)["neuron"] for line in listed.stdout.splitlines()] == [
        r.neuron for r in ranked[:3]]
    for args, message in (
            (("top", job_id, "resid_post0", "1"), "no top activations for blocks.0.hook_resid"),
            (("top", job_id, "hook_embed", "9999"), "hook_embed has no neuron 9999"),
            (("top", job_id, "hook_embed", "x"), "neuron must be INDEX or HEAD.INDEX"),
            (("top", job_id, "nonsense", "1"), "unknown hook 'nonsense'"),
            (("neurons", job_id, "hook_embed", "--limit", "0"), "--limit must be positive"),
            (("top", job_id, "hook_embed", "1", "--format", "parquet"), "needs --output")):
        failed = lensbatch(*args, env=env)
        assert failed.returncode != 0 and message in failed.stderr, (args, failed.stderr)
        assert "Traceback" not in failed.stderr


@pytest.mark.parametrize(("options", "message"), [
    (("--top-activations", "pattern"), "takes hooks with neurons"),
    (("--top-activations", "hook_nothing"), "unknown activation 'hook_nothing'"),
    (("--top-activations", "hook_embed", "--top-k", "0"), "--top-k must be 1 to 1000"),
])
def test_bad_top_options_are_refused_before_anything_is_stored(
        tmp_path: Path, options: tuple[str, ...], message: str) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    result = lensbatch("run", "corpus/sample.jsonl", "--model", "toy-induction", *options,
                       env={"LENSBATCH_DATABASE_URL": url})
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
