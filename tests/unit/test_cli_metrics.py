"""`score`, `heads`, and --activations/--stats as users run them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lensbatch.store import schema
from tests.cli import count_rows, lensbatch, user_error_line

# The seed notebook's section 2 paragraph (112 tokens with BOS).
SEED_TEXT = """## Loading Models

HookedTransformer comes loaded with >40 open source GPT-style models. You can load any of them in with `HookedTransformer.from_pretrained(MODEL_NAME)`. Each model is loaded into the consistent HookedTransformer architecture, designed to be clean, consistent and interpretability-friendly.

For this demo notebook we'll look at GPT-2 Small, an 80M parameter model. To try the model the model out, let's find the loss on this paragraph!"""  # noqa: E501


def test_score_reproduces_the_seed_notebook_sections(tmp_path: Path) -> None:
    text = tmp_path / "seed.txt"
    text.write_text(SEED_TEXT)
    out = lensbatch("score", f"@{text}", "--model", "toy-induction",
                    "--activations", "pattern0", "--stats", "mean,absmax")
    assert out.returncode == 0, out.stderr
    note, *lines = out.stdout.splitlines()
    assert note.startswith("model toy-induction (weights set by hand")
    assert lines[0].startswith("tokens (112): ['<|endoftext|>', '##', ' Loading', ' Models'")
    assert re.fullmatch(r"loss: \d+\.\d{4} nats over 111 predictions", lines[1])
    assert re.fullmatch(r"accuracy: \d+/111", lines[2])
    novel = next(line for line in lines if line.startswith("novel induction hits"))
    assert "['ooked', 'Trans', 'former'" in novel  # the seed's evidence of induction heads
    assert "top induction heads: 1.2 (1.000)" in out.stdout
    assert "blocks.0.attn.hook_pattern mean:" in out.stdout


def test_score_without_bos() -> None:
    out = lensbatch("score", "Hello TransformerLens!", "--model", "toy-induction", "--no-bos")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1].startswith(
        "tokens (5): ['Hello', ' Trans', 'former', 'Lens', '!']")
    assert "accuracy: 0/4" in out.stdout


def test_unknown_hook_or_statistic_is_refused_before_anything_is_stored(
        tmp_path: Path, sqlite_url: str) -> None:
    from lensbatch.store.db import ensure_schema

    ensure_schema(sqlite_url)
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "hello there"}\n')
    env = {"LENSBATCH_DATABASE_URL": sqlite_url,
           "LENSBATCH_BROKER_URL": "redis://127.0.0.1:1/0"}  # never reached
    line = user_error_line(lensbatch("submit", str(corpus), "--model", "toy-induction",
                                    "--activations", "pattern,mlp_post", env=env))
    assert "unknown activation 'mlp_post'" in line and "attn.hook_pattern" in line
    line = user_error_line(lensbatch("submit", str(corpus), "--activations", "resid_post",
                                    "--stats", "mean,median", env=env))
    assert "unknown statistic 'median'" in line and "frac_zero" in line
    line = user_error_line(lensbatch("run", str(corpus), "--model", "toy-induction",
                                    "--activations", "blocks.7.hook_resid_post", env=env))
    assert "unknown activation 'blocks.7.hook_resid_post'" in line
    assert count_rows(sqlite_url, schema.jobs) == 0
    assert count_rows(sqlite_url, schema.documents) == 0


@pytest.mark.parametrize("fmt", ["table", "jsonl"])
def test_run_then_heads(tmp_path: Path, sqlite_url: str, fmt: str) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": SEED_TEXT}) + "\n"
                      + json.dumps({"id": "b", "text": "Hello TransformerLens!"}) + "\n")
    env = {"LENSBATCH_DATABASE_URL": sqlite_url}
    run = lensbatch("run", str(corpus), "--model", "toy-induction", "--activations",
                    "resid_post,pattern", "--stats", "mean,norm", env=env)
    assert run.returncode == 0, run.stderr
    assert "induction probe loss" in run.stdout
    job_id = run.stdout.strip().splitlines()[-1].split()[-1]
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("heads:   ") and last.endswith(f"lensbatch heads {job_id}")
    heads = lensbatch("heads", job_id, "--format", fmt, env=env)
    assert heads.returncode == 0, heads.stderr
    if fmt == "table":
        assert "top induction heads (probe): 1.2 (1.000)" in heads.stdout
        assert "top previous-token heads (documents): 0.1 (1.000)" in heads.stdout
    else:
        rows = [json.loads(line) for line in heads.stdout.splitlines()]
        assert [(r["layer"], r["head"]) for r in rows] == [
            (layer, head) for layer in (0, 1) for head in range(4)]
        assert all(r["n_documents"] == 2 for r in rows)
        assert rows[6]["probe_induction_score"] > 0.99
    assert count_rows(sqlite_url, schema.activation_stats) == 2 * 2 * (2 * 4 + 2)
