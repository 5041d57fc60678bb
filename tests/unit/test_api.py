"""The Python API (lensbatch.open) over jobs run by the real `lensbatch run`: every stored
document scored again in TransformerLens gives its stored loss, the DataFrames carry the
documents' ids and metadata, and docs/api.md's example runs as printed."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

import lensbatch
from lensbatch.errors import DatabaseUnavailable, JobNotFound, UserError
from lensbatch.store import schema
from tests.cli import lensbatch as run_cli
from tests.cli import run_without_torch
from tests.unit.test_readme import ROOT, fenced

DOCS: list[dict[str, Any]] = [
    {"id": "cat", "text": "The cat sat on the mat. The cat sat on the mat. The cat sat.",
     "source": "nursery", "label": 1},
    {"id": "hooks", "text": "HookedTransformer is a library. We use HookedTransformer to "
                            "load models, and HookedTransformer caches activations.",
     "source": "docs", "label": 2, "reviewed": True},
    {"id": "plain", "text": "A short note with no fields of its own."},
    {"id": "keeper", "text": "The lighthouse keeper climbed the spiral stairs at dusk, "
                             "and the lighthouse keeper lit the lamp.",
     "source": "fiction", "label": 3},
]
MODELS = ("toy-induction", "gpt2-small-random")
RELATIVE = 1e-5


def last_job(stdout: str) -> str:
    """The job id `lensbatch run` ends its output with."""
    return stdout.strip().splitlines()[-1].split()[-1]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A SQLite database with one finished job per model of MODELS over DOCS (the
    toy-induction job with activation statistics), run by the console script."""
    path = tmp_path_factory.mktemp("api")
    corpus = path / "notes.jsonl"
    corpus.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    url = f"sqlite:///{path / 'api.db'}"
    jobs = {}
    for model in MODELS:
        extra = ("--activations", "resid_post", "--stats", "norm", "--top-activations",
                 "hook_embed", "--top-k", "3") if model == MODELS[0] else ()
        result = run_cli("run", str(corpus), "--model", model, *extra,
                         env={"LENSBATCH_DATABASE_URL": url})
        assert result.returncode == 0, result.stderr
        jobs[model] = last_job(result.stdout)
    yield url, jobs


@pytest.mark.parametrize("model", MODELS)
def test_stored_loss_is_transformerlens_loss(database: tuple[str, dict[str, str]],
                                             model: str) -> None:
    url, jobs = database
    db = lensbatch.open(url)
    job = jobs[model]
    results = db.results(job).set_index("doc_id")
    bridge = db.load_model(job)
    assert str(bridge.cfg.device) == "cpu"
    for doc in DOCS:
        tokens = db.tokens(job, doc["id"])
        assert tokens.shape == (1, results.n_tokens[doc["id"]])
        assert int(tokens[0, 0]) == bridge.tokenizer.bos_token_id  # BOS, as the job had it
        loss = bridge(tokens, return_type="loss", loss_per_token=True).sum().item()
        stored = results.nll_sum[doc["id"]]
        assert math.isclose(loss, stored, rel_tol=RELATIVE), (doc["id"], loss, stored)


def test_jobs_and_results_frames(database: tuple[str, dict[str, str]]) -> None:
    url, jobs = database
    db = lensbatch.open(url)
    listed = db.jobs()
    assert list(listed.job_id) == [jobs[m] for m in reversed(MODELS)]  # newest first
    assert list(listed.model) == list(reversed(MODELS))
    assert set(listed.status) == {"done"} and set(listed.n_done) == {len(DOCS)}
    for model in MODELS:
        results = db.results(jobs[model])
        assert list(results.doc_id) == [doc["id"] for doc in DOCS]
        row = listed.set_index("job_id").loc[jobs[model]]
        assert row.loss == pytest.approx(results.nll_sum.sum() / results.n_predictions.sum())
        assert row.n_tokens == results.n_tokens.sum()


def test_results_carry_each_documents_metadata(database: tuple[str, dict[str, str]]) -> None:
    url, jobs = database
    results = lensbatch.open(url).results(jobs["toy-induction"]).set_index("doc_id")
    assert list(results.columns[-3:]) == ["source", "label", "reviewed"]  # first-seen order
    for doc in DOCS:
        for field in ("source", "label"):
            value = results[field][doc["id"]]
            if field in doc:
                assert value == doc[field]
            else:
                assert value is None or math.isnan(value)
    assert results.reviewed["hooks"] is True and results.reviewed["cat"] is None
    printed = run_cli("results", jobs["toy-induction"], "--format", "jsonl",
                      env={"LENSBATCH_DATABASE_URL": url})
    rows = [json.loads(line) for line in printed.stdout.splitlines()]
    assert [(r["doc_id"], r["source"], r["label"]) for r in rows] == [
        (d["id"], d.get("source"), d.get("label")) for d in DOCS]


def test_activations_by_document_id(database: tuple[str, dict[str, str]]) -> None:
    url, jobs = database
    job = jobs["toy-induction"]
    frame = lensbatch.open(url).activations(job)
    assert list(frame.columns) == ["doc_id", "hook", "layer", "head", "stat", "value"]
    assert len(frame) == len(DOCS) * 2  # toy-induction's two blocks, one statistic
    assert list(dict.fromkeys(frame.doc_id)) == [doc["id"] for doc in DOCS]
    assert set(frame.hook) == {"blocks.0.hook_resid_post", "blocks.1.hook_resid_post"}
    assert frame["head"].isna().all() and set(frame.layer) == {0, 1}
    engine = create_engine(url)
    a, jd = schema.activation_stats, schema.job_documents
    with engine.connect() as connection:
        stored = {(row.doc_id, row.hook): row.value for row in connection.execute(
            select(jd.c.doc_id, a.c.hook, a.c.value).join(
                jd, (jd.c.job_id == a.c.job_id) & (jd.c.seq == a.c.seq))
            .where(a.c.job_id == job))}
    engine.dispose()
    assert {(r.doc_id, r.hook): r.value for r in frame.itertuples()} == stored
    assert len(set(stored.values())) > 2  # the documents' values differ: the join matters
    printed = run_cli("results", job, "--activations", "--format", "csv",
                      env={"LENSBATCH_DATABASE_URL": url})
    lines = printed.stdout.splitlines()
    assert lines[0] == "doc_id,hook,layer,head,stat,value" and len(lines) == len(frame) + 1
    assert lines[1].startswith("cat,blocks.0.hook_resid_post,0,,norm,")


def test_activations_of_a_job_without_them(database: tuple[str, dict[str, str]]) -> None:
    url, jobs = database
    assert lensbatch.open(url).activations(jobs["gpt2-small-random"]).empty
    printed = run_cli("results", jobs["gpt2-small-random"], "--activations",
                      env={"LENSBATCH_DATABASE_URL": url})
    assert printed.returncode == 2 and "kept no activation statistics" in printed.stderr
    assert "Traceback" not in printed.stderr


def test_heads_and_text(database: tuple[str, dict[str, str]]) -> None:
    url, jobs = database
    db = lensbatch.open(url)
    heads = db.heads(jobs["toy-induction"])
    top = heads.sort_values("probe_induction_score", ascending=False).iloc[0]
    assert (top.layer, top["head"]) == (1, 2)  # toy-induction's induction head
    assert len(heads) == 2 * 4
    assert db.text(jobs["gpt2-small-random"], "keeper") == DOCS[3]["text"]
    with pytest.raises(UserError, match="no document 'nope'"):
        db.text(jobs["toy-induction"], "nope")
    with pytest.raises(JobNotFound):
        db.results("0000000000000000")


def test_open_reads_the_clis_database(database: tuple[str, dict[str, str]],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url, jobs = database
    monkeypatch.setenv("LENSBATCH_DATABASE_URL", url)
    assert set(lensbatch.open().jobs().job_id) == set(jobs.values())


def test_open_never_creates_a_missing_file(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LENSBATCH_DATABASE_URL", raising=False)
    with pytest.raises(DatabaseUnavailable, match="no lensbatch database at lensbatch.db"):
        lensbatch.open()
    with pytest.raises(DatabaseUnavailable, match="elsewhere.db"):
        lensbatch.open(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert list(tmp_path.iterdir()) == []


def test_the_documented_example_runs(tmp_path: Path) -> None:
    """docs/api.md's python block, run where `make demo` left its database."""
    (code,) = [text for tag, text in fenced(ROOT / "docs" / "api.md") if tag == "python"]
    (tmp_path / "corpus").symlink_to(ROOT / "corpus")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LENSBATCH_DATABASE_URL": "sqlite:///demo.db"}
    demo = run_cli("run", "corpus/sample.jsonl", "--model", "toy-induction", env=env,
                   cwd=str(tmp_path))
    assert demo.returncode == 0, demo.stderr
    env.pop("LENSBATCH_DATABASE_URL")  # the example names its database itself
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    found = re.fullmatch(r"stored (\S+)  TransformerLens (\S+)", result.stdout.strip())
    assert found is not None, result.stdout
    stored, rescored = float(found[1]), float(found[2])
    engine = create_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    r, jd = schema.results, schema.job_documents
    with engine.connect() as connection:
        expected = connection.scalar(
            select(r.c.nll_sum).join(jd, (jd.c.job_id == r.c.job_id) & (jd.c.seq == r.c.seq))
            .where(jd.c.doc_id == "induction-heads-explained"))
    engine.dispose()
    assert stored == pytest.approx(expected, abs=1e-6)
    assert math.isclose(rescored, stored, rel_tol=RELATIVE)


def test_frames_need_neither_torch_nor_transformerlens(
        database: tuple[str, dict[str, str]]) -> None:
    url, jobs = database
    printed = run_without_torch(
        f"import lensbatch\ndb = lensbatch.open({url!r})\n"
        f"print(len(db.results({jobs['toy-induction']!r})), len(db.jobs()), "
        f"len(db.activations({jobs['toy-induction']!r})))")
    assert printed.split() == [str(len(DOCS)), str(len(MODELS)), str(2 * len(DOCS))]


def test_neurons_and_top_contexts(database: tuple[str, dict[str, str]]) -> None:
    """db.top gives a neuron's three highest activations over the corpus, as run_with_cache
    finds them document by document; db.neurons ranks every neuron of the hook."""
    url, jobs = database
    db = lensbatch.open(url)
    job = jobs["toy-induction"]
    neurons = db.neurons(job, "hook_embed")
    bridge = db.load_model(job)
    assert len(neurons) == bridge.cfg.d_model
    assert list(neurons.max_value) == sorted(neurons.max_value, reverse=True)
    neuron = int(neurons.neuron.iloc[0])
    found = []  # (value, doc_id, position) of every position of the corpus
    for doc in DOCS:
        _, cache = bridge.run_with_cache(db.tokens(job, doc["id"]), names_filter="hook_embed")
        values = cache["hook_embed"][0, :, neuron].tolist()
        found += [(value, doc["id"], position) for position, value in enumerate(values)]
    expected = sorted(found, key=lambda entry: -entry[0])[:3]
    top = db.top(job, "hook_embed", neuron)
    assert list(top["rank"]) == [1, 2, 3]
    for (value, doc_id, position), row in zip(expected, top.itertuples(), strict=True):
        assert math.isclose(row.value, value, rel_tol=1e-6)
        assert (row.doc_id, row.position) == (doc_id, position)  # ties: earliest first
    assert math.isclose(neurons.max_value.iloc[0], expected[0][0], rel_tol=1e-6)
