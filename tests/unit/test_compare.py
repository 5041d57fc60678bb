"""Sweeps, `compare` and `tokens` as users run them, on models whose difference is known:
toy-induction against toy-induction-ablated, the same weights with the induction head
(1.2) switched off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from lensbatch.store import schema
from lensbatch.store.report_data import find_document, hit_positions
from tests.cli import count_rows, lensbatch, user_error_line
from tests.faults import REPO
from tests.jobdb import repeated_corpus

Sweep = tuple[dict[str, str], str, Path]  # env, sweep id, folder
COMPARE_TABLE = REPO / "bench-results" / "compare-toy-induction.md"


def jsonl(*args: str, env: dict[str, str]) -> list[dict[str, Any]]:
    result = lensbatch(*args, "--format", "jsonl", env=env)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """`lensbatch run` of the two models over one corpus: (env, sweep id, folder)."""
    tmp = tmp_path_factory.mktemp("sweep")
    env = {"LENSBATCH_DATABASE_URL": f"sqlite:///{tmp / 'lensbatch.db'}"}
    corpus = repeated_corpus(tmp / "repeated.jsonl")
    result = lensbatch("run", str(corpus), "--model", "toy-induction", "--model",
                       "toy-induction-ablated", env=env)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("compare: ") and " compare " in last
    assert result.stdout.count("[low, high]: 95% interval") == 2  # both summaries
    return env, last.split()[-1], tmp


def sweep_rows(env: dict[str, str], sweep_id: str) -> list[Any]:
    engine = create_engine(env["LENSBATCH_DATABASE_URL"])
    with engine.connect() as connection:
        jobs = connection.execute(
            select(schema.jobs).where(schema.jobs.c.sweep_id == sweep_id)
            .order_by(schema.jobs.c.sweep_index)).all()
    engine.dispose()
    return list(jobs)


def test_a_sweep_is_one_job_per_model_over_the_same_documents(sweep: Sweep) -> None:
    env, sweep_id, _ = sweep
    jobs = sweep_rows(env, sweep_id)
    assert [(j.model, j.sweep_index, j.status) for j in jobs] == [
        ("toy-induction", 0, "done"), ("toy-induction-ablated", 1, "done")]
    engine = create_engine(env["LENSBATCH_DATABASE_URL"])
    jd = schema.job_documents
    with engine.connect() as connection:
        per_job = [connection.execute(select(jd.c.seq, jd.c.document_id).where(
            jd.c.job_id == j.id).order_by(jd.c.seq)).all() for j in jobs]
    engine.dispose()
    assert per_job[0] == per_job[1] and len(per_job[0]) == 12
    assert count_rows(env["LENSBATCH_DATABASE_URL"], schema.documents) == 12  # stored once
    listed = lensbatch("jobs", env=env).stdout
    # jobs shows a sweep by the first 8 characters of its id, which every command takes
    assert f"{sweep_id[:8]}/1" in listed and f"{sweep_id[:8]}/2" in listed
    status = lensbatch("status", sweep_id, env=env).stdout
    assert f"sweep {sweep_id}: 2 jobs" in status
    assert all(j.id in status for j in jobs)
    one = lensbatch("status", jobs[0].id, env=env).stdout
    assert f"{sweep_id} (job 1)" in one and "[low, high]: 95% interval" in one


def test_the_switched_off_head_loses_on_repeated_text(sweep: Sweep) -> None:
    env, sweep_id, _ = sweep
    diffs = {row["metric"]: row for row in jsonl("compare", sweep_id, "--part",
                                                 "differences", env=env)}
    loss, accuracy = diffs["loss"], diffs["accuracy"]
    assert loss["model"] == "toy-induction-ablated" and loss["documents"] == 12
    assert 0 < loss["low"] <= loss["difference"] <= loss["high"]
    assert loss["excludes_zero"] is True
    assert accuracy["low"] <= accuracy["difference"] <= accuracy["high"] < 0
    heads = jsonl("compare", sweep_id, "--part", "heads", env=env)
    assert (heads[0]["layer"], heads[0]["head"]) == (1, 2)
    assert heads[0]["baseline_induction_score"] > 0.9 > 0.2 > heads[0]["induction_score"]
    assert all(abs(row["induction_score_difference"]) < 1e-6 for row in heads[1:])
    table = lensbatch("compare", sweep_id, env=env)
    assert table.returncode == 0, table.stderr
    assert table.stdout == lensbatch("compare", sweep_id, env=env).stdout  # seeded
    assert "compared on 12 documents" in table.stdout
    COMPARE_TABLE.parent.mkdir(exist_ok=True)
    COMPARE_TABLE.write_text(f"$ lensbatch compare {sweep_id}\n{table.stdout}")
    print("\n" + table.stdout)


def test_compare_numbers_match_the_database_and_status(sweep: Sweep) -> None:
    env, sweep_id, _ = sweep
    jobs = sweep_rows(env, sweep_id)
    corpus = jsonl("compare", sweep_id, "--part", "corpus", env=env)
    by_ids = jsonl("compare", *(j.id for j in jobs), "--part", "corpus", env=env)
    assert corpus == by_ids
    for row, job in zip(corpus, jobs, strict=True):
        results = jsonl("results", job.id, env=env)
        nll = sum(r["nll_sum"] for r in results)
        predictions = sum(r["n_predictions"] for r in results)
        correct = sum(r["n_correct"] for r in results)
        assert row["loss"] == pytest.approx(nll / predictions)
        assert row["accuracy"] == pytest.approx(correct / predictions)
        status = lensbatch("status", job.id, env=env).stdout
        assert f"{row['loss']:.4f} [{row['loss_low']:.4f}, {row['loss_high']:.4f}]" in status
    documents = jsonl("compare", sweep_id, "--part", "documents", "--top", "3", env=env)
    assert len(documents) == 3
    assert documents[0]["loss_difference"] == max(d["loss_difference"] for d in documents)


def test_jobs_over_different_documents_are_compared_on_those_they_share(sweep: Sweep) -> None:
    env, sweep_id, tmp = sweep
    first = sweep_rows(env, sweep_id)[0].id
    # documents r0-r5 again (same texts, other ids), plus four new ones
    texts = [json.loads(line)["text"] for line in (tmp / "repeated.jsonl").read_text()
             .splitlines()][:6]
    other = tmp / "other.jsonl"
    other.write_text("".join(json.dumps({"id": f"o{i}", "text": t}) + "\n"
                             for i, t in enumerate(texts))
                     + repeated_corpus(tmp / "new.jsonl", 4, seed=9, prefix="n").read_text())
    run = lensbatch("run", str(other), "--model", "toy-induction", env=env)
    assert run.returncode == 0, run.stderr
    second = run.stdout.strip().splitlines()[-1].split()[-1]
    table = lensbatch("compare", first, second, env=env).stdout
    assert "compared on 6 documents" in table and f"{first} 12, {second} 10" in table
    rows = jsonl("compare", first, second, "--part", "differences", env=env)
    # the same model on the same texts: no difference at all
    assert {r["metric"]: (r["difference"], r["low"], r["high"]) for r in rows}["loss"] == (
        pytest.approx(0.0), pytest.approx(0.0), pytest.approx(0.0))


@pytest.mark.parametrize("args,fragments", [
    (["compare", "{job}"], ["two jobs or more"]),
    (["compare", "{job}", "nosuchid"], ["no job or sweep 'nosuchid'"]),
    (["compare", "{sweep}", "--format", "csv"], ["--part"]),
    (["compare", "{sweep}", "--part", "everything"], ["--part must be"]),
    (["tokens", "{job}", "no-such-doc"], ["has no document 'no-such-doc'"]),
    (["tokens", "nosuchjob", "r0"], ["no job 'nosuchjob'"]),
])
def test_mistakes_are_one_line(sweep: Sweep, args: list[str], fragments: list[str]) -> None:
    env, sweep_id, _ = sweep
    job = sweep_rows(env, sweep_id)[0].id
    filled = [a.format(job=job, sweep=sweep_id) for a in args]
    user_error_line(lensbatch(*filled, env=env), *fragments)


def test_tokens_add_up_to_the_stored_document(sweep: Sweep) -> None:
    env, sweep_id, _ = sweep
    job = sweep_rows(env, sweep_id)[0].id
    stored = {r["doc_id"]: r for r in jsonl("results", job, env=env)}
    tokens = jsonl("tokens", job, "r2", env=env)
    row = stored["r2"]
    assert len(tokens) == row["n_tokens"] and tokens[0]["loss"] is None
    scored = [t for t in tokens if t["loss"] is not None]
    assert len(scored) == row["n_predictions"]
    assert sum(t["loss"] for t in scored) == pytest.approx(row["nll_sum"], rel=1e-6)
    assert sum(bool(t["correct"]) for t in scored) == row["n_correct"]
    for flag, metric in (("candidate", "induction_candidates"), ("hit", "induction_hits"),
                         ("novel", "induction_novel_hits")):
        assert sum(bool(t[flag]) for t in tokens) == row[metric], flag
    engine = create_engine(env["LENSBATCH_DATABASE_URL"])
    document = find_document(engine, job, "r2")
    assert document is not None
    positions = [position for position, _ in hit_positions(engine, job, document.seq)]
    engine.dispose()
    assert positions and positions == [t["position"] for t in tokens if t["hit"]]
    plain = lensbatch("tokens", job, "r2", env=env).stdout.splitlines()  # not a terminal
    assert plain[0].split() == ["position", "token", "loss", "predicted", "induction"]
    assert "\x1b[" not in "".join(plain)
    summed, kept = plain[-2].split(": ", 1)[1], plain[-1].split(": ", 1)[1]
    assert summed == kept  # the sums printed are the stored numbers


def test_a_models_file_gives_the_order_and_training_steps(tmp_path: Path,
                                                          sqlite_url: str) -> None:
    env = {"LENSBATCH_DATABASE_URL": sqlite_url}
    corpus = repeated_corpus(tmp_path / "c.jsonl", n_docs=3)
    listing = tmp_path / "models.txt"
    listing.write_text("# checkpoints, in training order\ntoy-induction-ablated 0\n\n"
                       "toy-induction 1000\n")
    result = lensbatch("run", str(corpus), "--models", str(listing), env=env)
    assert result.returncode == 0, result.stderr
    sweep_id = result.stdout.strip().split()[-1]
    jobs = sweep_rows(env, sweep_id)
    assert [(j.model, j.sweep_step) for j in jobs] == [
        ("toy-induction-ablated", 0), ("toy-induction", 1000)]
    corpus_rows = jsonl("compare", sweep_id, "--part", "corpus", env=env)
    assert [r["step"] for r in corpus_rows] == [0, 1000]


def test_bad_model_lists_are_refused_before_anything_is_stored(tmp_path: Path,
                                                               sqlite_url: str) -> None:
    from lensbatch.store.db import ensure_schema

    ensure_schema(sqlite_url)
    env = {"LENSBATCH_DATABASE_URL": sqlite_url}
    corpus = repeated_corpus(tmp_path / "c.jsonl", n_docs=2)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    user_error_line(lensbatch("run", str(corpus), "--models", str(empty), env=env),
                    "lists no model")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("toy-induction\nno-such-model-xyz 5\n")
    user_error_line(lensbatch("submit", str(corpus), "--models", str(wrong), env=env),
                    f"{wrong}:2", "no-such-model-xyz")
    user_error_line(lensbatch("run", str(corpus), "--models", str(tmp_path / "none.txt"),
                              env=env), "cannot read")
    user_error_line(lensbatch("run", str(corpus), "-m", "toy-induction", "--models",
                              str(wrong), env=env), "not both")
    user_error_line(lensbatch("run", str(corpus), "-m", "toy-induction", "-m",
                              "no-such-model-xyz", env=env), "no-such-model-xyz")
    assert count_rows(sqlite_url, schema.jobs) == 0


def test_tokens_are_coloured_by_loss_on_a_terminal() -> None:
    import io

    from rich.console import Console

    from lensbatch.tokens import TokenScore
    from scheduler.token_output import coloured_table, document_scale

    tokens = [TokenScore(0, 50256, "<|endoftext|>", None, None, False, False, False),
              TokenScore(1, 464, "The", 10.5, False, False, False, False),
              TokenScore(2, 3797, " cat", 0.01, True, True, True, True)]
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="truecolor", width=100).print(
        coloured_table(tokens))
    text = out.getvalue()
    assert "\x1b[" in text and "novel hit" in text
    assert "48;2;255;" in text  # the hardest token (10.5 nats) at full red
    assert "48;2;80;80;80" in text  # the easiest (0.01 nats) unshaded
    scale = document_scale(tokens)  # from the document's own losses, the first token's none
    assert scale.low == pytest.approx(0.01 + 0.05 * 10.49)
    assert scale.high == pytest.approx(0.01 + 0.95 * 10.49)
    assert scale.share(None) == 0.0 and scale.share(50.0) == 1.0 and scale.share(0.0) == 0.0
