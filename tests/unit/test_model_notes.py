"""Numbers from a model that is not trained say so: `run`, `status` and `score` name
random or hand-set weights, and say which model they chose when given no --model."""

from __future__ import annotations

import json
from pathlib import Path

from scheduler.model_notes import DEFAULT_MODEL_LINE
from tests.cli import lensbatch

RANDOM = ("model gpt2-small-random (seeded random weights: an untrained model, loss ~ "
          "ln 50257 = 10.8)")


def test_run_with_no_model_names_its_choice(tmp_path: Path, sqlite_url: str) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": "A short text to score."}) + "\n")
    env = {"LENSBATCH_DATABASE_URL": sqlite_url}
    ran = lensbatch("run", str(corpus), "--no-heads", env=env)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert RANDOM in lines and DEFAULT_MODEL_LINE in lines
    assert "pass --model gpt2-small for trained weights" in DEFAULT_MODEL_LINE
    job = lines[-1].split()[-1]
    assert RANDOM in lensbatch("status", job, env=env).stdout.splitlines()


def test_score_names_the_weights(tiny_checkpoint: str) -> None:
    default = lensbatch("score", "Hello there. Hello there.")
    assert default.returncode == 0, default.stderr
    assert default.stdout.splitlines()[:2] == [DEFAULT_MODEL_LINE, RANDOM]
    toy = lensbatch("score", "Hello there. Hello there.", "--model", "toy-induction")
    assert toy.stdout.splitlines()[0].startswith("model toy-induction (weights set by hand")
    assert DEFAULT_MODEL_LINE not in toy.stdout
    trained = lensbatch("score", "Hello there.", "--model", tiny_checkpoint)
    assert trained.stdout.splitlines()[0].startswith("tokens (")  # a checkpoint: no note
