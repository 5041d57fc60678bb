"""Row i: bytes per document in PostgreSQL after a real `lensbatch run`.

`python -m bench.storage [--model gpt2-small-random] [--corpus corpus/sample.jsonl]`
starts a throwaway PostgreSQL, runs `lensbatch run` over the corpus with every default
metric, and prints pg_total_relation_size (table, TOAST and indexes) of every table,
divided by the documents evaluated. The tables that hold one or more rows per document
(results, per-head data, hits) are the ones the 2 KB target is about; `documents` (the
text) and the per-job tables are listed apart.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

from bench.workers import LENSBATCH

# Rows per (job, document): the 2 KB target. job_documents (ids and source) and
# documents (the text) are listed on their own lines.
PER_DOCUMENT = ("results", "head_scores", "induction_hit_tokens", "activation_stats")
CORPUS_TABLES = ("job_documents", "documents")
COPIES = 29  # 30 jobs' worth of rows in all


@dataclass(frozen=True)
class TableSize:
    name: str
    rows: int
    total_bytes: int  # pg_total_relation_size: heap, TOAST, indexes


def table_names(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version' ORDER BY tablename")))


def table_sizes(engine: Engine) -> list[TableSize]:
    """Every table of the public schema, largest first."""
    sizes = []
    with engine.connect() as connection:
        for name in table_names(engine):
            # A name from the catalogue, quoted as an identifier by PostgreSQL itself.
            quoted = connection.scalar(text("SELECT quote_ident(:t)"), {"t": name})
            rows = connection.scalar(text(f"SELECT count(*) FROM {quoted}"))
            size = connection.scalar(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"),
                                     {"t": name})
            sizes.append(TableSize(name, int(rows or 0), int(size or 0)))
    return sorted(sizes, key=lambda s: -s.total_bytes)


def copy_job(engine: Engine, job_id: str, copies: int) -> None:
    """`copies` more jobs whose per-document rows are this job's real rows, so that the
    per-document cost is measured past the first pages of each table and index."""
    with engine.begin() as connection:
        names = [n for n in table_names(engine) if n in ("jobs", *CORPUS_TABLES[:1],
                                                         *PER_DOCUMENT)]
        order = ["jobs", "job_documents", *(n for n in names if n in PER_DOCUMENT)]
        for copy in range(copies):
            for name in order:
                key = "id" if name == "jobs" else "job_id"
                columns = list(connection.scalars(text(
                    "SELECT quote_ident(column_name) FROM information_schema.columns "
                    "WHERE table_name = :t ORDER BY ordinal_position"), {"t": name}))
                chosen = [":new" if c == key else c for c in columns]
                connection.execute(text(
                    f"INSERT INTO {name} ({', '.join(columns)}) "
                    f"SELECT {', '.join(chosen)} FROM {name} WHERE {key} = :job"),
                    {"new": f"{job_id[:8]}copy{copy:04d}", "job": job_id})


def print_sizes(sizes: list[TableSize], n_docs: int) -> int:
    """Print bytes per document per table; return the per-document tables' sum."""
    print(f"{'table':<24} {'rows':>10} {'bytes':>12} {'bytes/doc':>10}")
    for s in sizes:
        print(f"{s.name:<24} {s.rows:>10,} {s.total_bytes:>12,} {s.total_bytes / n_docs:>10,.0f}")
    per_doc = sum(s.total_bytes for s in sizes if s.name in PER_DOCUMENT)
    corpus = sum(s.total_bytes for s in sizes if s.name in CORPUS_TABLES)
    rest = sum(s.total_bytes for s in sizes) - per_doc - corpus
    print(f"per-document metric tables ({', '.join(PER_DOCUMENT)}): "
          f"{per_doc / n_docs:,.0f} bytes/doc")
    print(f"corpus tables ({', '.join(CORPUS_TABLES)}): {corpus / n_docs:,.0f} bytes/doc")
    print(f"per-job and other tables: {rest:,} bytes in all")
    return per_doc


def run_and_measure(corpus: Path, model: str, extra: list[str]) -> None:
    from tests.services import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="lensbatch-storage-") as tmp:
            env = {**os.environ, "LENSBATCH_DATABASE_URL": server.url,
                   "LENSBATCH_CACHE_DIR": os.environ.get("LENSBATCH_CACHE_DIR", tmp),
                   "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
            run = subprocess.run([LENSBATCH, "run", str(corpus), "--model", model,
                                  "--device", "cpu", *extra], env=env, capture_output=True,
                                 text=True)
            if run.returncode != 0:
                raise SystemExit(f"lensbatch run failed: {run.stderr[-800:]}")
        engine = create_engine(server.url)
        with engine.connect() as connection:
            n_docs = int(connection.scalar(text("SELECT count(*) FROM results")) or 0)
            job_id = str(connection.scalar(text("SELECT id FROM jobs")))
        print(f"{model} over {corpus}: {n_docs} documents; options {extra or 'default'}")
        first = print_sizes(table_sizes(engine), n_docs)
        copy_job(engine, job_id, COPIES)
        print(f"\nthe same rows {COPIES} more times (as {COPIES} more jobs):")
        more = print_sizes(table_sizes(engine), n_docs * (COPIES + 1))
        print(f"marginal per-document metric tables: "
              f"{(more - first) / (n_docs * COPIES):,.0f} bytes/doc")
        engine.dispose()
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storage", description=__doc__)
    parser.add_argument("--model", default="gpt2-small-random")
    parser.add_argument("--corpus", type=Path, default=Path("corpus/sample.jsonl"))
    parser.add_argument("extra", nargs="*", help="more `lensbatch run` options, after --")
    args = parser.parse_args(argv)
    run_and_measure(args.corpus, args.model, args.extra)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
