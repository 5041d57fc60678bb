"""What document metadata costs at ingest: one corpus stored with and without two extra
JSONL fields per document ("source", "label"), side by side, on SQLite and on
PostgreSQL (COPY), in a fresh database each time; the best of `--repeats` runs.

    python -m bench.metadata_ingest --docs 200000

Prints seconds per variant, the ratio with / without, and the bytes per document that
the metadata adds (SQLite: the database file; PostgreSQL: job_documents with its
indexes and TOAST).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text

from lensbatch.jobspec import JobSpec
from lensbatch.store.db import ensure_schema
from lensbatch.store.jobs import create_job

SOURCES = ("wiki", "news", "forum", "books")


def write_corpus(path: Path, n_docs: int, fields: bool) -> Path:
    with path.open("w") as out:
        for i in range(n_docs):
            doc: dict[str, object] = {"id": f"d{i}",
                                      "text": f"Document {i}: the keeper climbed the stairs."}
            if fields:
                doc.update(source=SOURCES[i % len(SOURCES)], label=i % 10)
            out.write(json.dumps(doc) + "\n")
    return path


def timed_ingest(url: str, corpus: Path) -> float:
    engine = ensure_schema(url)
    started = time.perf_counter()
    create_job(engine, str(corpus), JobSpec())
    return time.perf_counter() - started


def sqlite_bytes(url: str) -> int:
    """The database file's size once its write-ahead log is checkpointed into it."""
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    return Path(url.removeprefix("sqlite:///")).stat().st_size


def postgres_bytes(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        size = int(connection.scalar(text(
            "SELECT pg_total_relation_size('job_documents')")) or 0)
    engine.dispose()
    return size


def measure(name: str, fresh_url: Callable[[], str], size: Callable[[str], int],
            corpora: dict[str, Path], repeats: int, n_docs: int) -> None:
    seconds: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for _ in range(repeats):
        for variant, corpus in corpora.items():  # alternated, so drift hits both alike
            url = fresh_url()
            elapsed = timed_ingest(url, corpus)
            seconds[variant] = min(seconds.get(variant, elapsed), elapsed)
            sizes[variant] = size(url)
    plain, meta = seconds["plain"], seconds["metadata"]
    print(f"{name:<10} plain {plain:7.2f} s  with 2 fields {meta:7.2f} s  "
          f"ratio {meta / plain:.3f}  docs/s {n_docs / plain:,.0f} -> {n_docs / meta:,.0f}  "
          f"+{(sizes['metadata'] - sizes['plain']) / n_docs:.1f} bytes/doc")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metadata_ingest",
                                     description=__doc__)
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    from tests.services import PostgresServer

    with tempfile.TemporaryDirectory(prefix="lensbatch-meta-") as tmp:
        root = Path(tmp)
        corpora = {"plain": write_corpus(root / "plain.jsonl", args.docs, False),
                   "metadata": write_corpus(root / "meta.jsonl", args.docs, True)}
        extra = corpora["metadata"].stat().st_size - corpora["plain"].stat().st_size
        print(f"{args.docs:,} documents; the fields add {extra / args.docs:.1f} bytes/doc "
              "of JSONL")
        counter = iter(range(10**6))
        measure("sqlite", lambda: f"sqlite:///{root / f'db{next(counter)}.db'}",
                sqlite_bytes, corpora, args.repeats, args.docs)
        server = PostgresServer()
        server.start()
        try:
            admin = create_engine(server.url, isolation_level="AUTOCOMMIT")

            def fresh_postgres() -> str:
                name = f"meta{next(counter)}"
                with admin.connect() as connection:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
                return server.url.rsplit("/", 1)[0] + f"/{name}"

            measure("postgresql", fresh_postgres, postgres_bytes, corpora, args.repeats,
                    args.docs)
            admin.dispose()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
