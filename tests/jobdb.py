"""A finished job in a fresh SQLite database, evaluated in-process by a tiny real model,
and the corpora the tests evaluate."""

from __future__ import annotations

import json
import random
from pathlib import Path

from sqlalchemy import Engine

from lensbatch.jobspec import JobSpec
from lensbatch.store.db import ensure_schema

# Repeated phrases make induction candidates; an untrained tiny model rarely predicts
# them, so tests that need hit tokens insert them by hand.
DOCS = [
    {"id": "cat", "text": "The cat sat on the mat. The cat sat on the mat. The cat sat."},
    {"id": "hooked", "text": "HookedTransformer is a library. We use HookedTransformer "
                             "to load models, and HookedTransformer caches activations."},
    {"id": "short", "text": "A short note."},
    {"id": "long", "text": " ".join(f"word{i % 17} and more" for i in range(60))},
]


PHRASE_WORDS = ("alpha beta gamma delta river stone cloud market garden window silver "
                "orange planet music lantern copper").split()


def repeated_corpus(path: Path, n_docs: int = 12, seed: int = 1, prefix: str = "r") -> Path:
    """Documents that say a random phrase twice: induction predicts the second copy."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_docs):
        phrase = " ".join(rng.choice(PHRASE_WORDS) for _ in range(rng.randint(8, 30)))
        lines.append(json.dumps({"id": f"{prefix}{i}", "text": f"{phrase}. {phrase}."}))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_corpus(path: Path) -> Path:
    path.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    return path


def finished_job(url: str, checkpoint: str, corpus: Path,
                 head_scores: str = "job") -> tuple[Engine, str]:
    """Run the whole local pipeline on `corpus`; return the engine and the job id.
    head_scores="document" keeps every document's per-head scores."""
    from scheduler.local import run_local

    engine = ensure_schema(url)
    spec = JobSpec(model=checkpoint, task_tokens=64, head_scores=head_scores).validate()
    report = run_local(engine, str(corpus), spec, "cpu")
    return engine, report.summary.job_id


def write_duplicate_corpus(path: Path, n_docs: int, duplicate: tuple[int, int]) -> Path:
    """n_docs short documents with ids doc-0, doc-1, ...; document duplicate[1] (line
    duplicate[1] + 1) reuses the id of document duplicate[0]."""
    ids = [f"doc-{i}" for i in range(n_docs)]
    ids[duplicate[1]] = ids[duplicate[0]]
    path.write_text("".join(json.dumps({"id": doc_id, "text": f"Text {i}."}) + "\n"
                            for i, doc_id in enumerate(ids)))
    return path
