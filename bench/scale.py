"""`python -m bench.scale --docs 10000000`: the queries of a job of ten million documents.

One throwaway PostgreSQL (shared_buffers 1 GB) and Redis. Rows:

- s2 bytes per document of each per-document table, at that scale;
- s3-s5 `status JOB`, `jobs` (with --jobs jobs in the database), `heads JOB`: the store's
  query in this process (median of 5), and the whole command (median of 3; most of it
  is the interpreter starting, shown on its own as s0);
- s6 `results JOB --format parquet`: rows per second and peak RSS of the command;
- s7 `report JOB --no-tokens` and `report JOB`: wall time and peak RSS of the command
  (the second loads the job's model to draw the hardest documents token by token);
- s1 `lensbatch submit` of --submit-docs more short documents (generated JSONL) into the
  same database: wall time and peak RSS (flat: the corpus streams through).

The job of --docs documents, its results, hits and counters are bulk-loaded
(bench/scale_load.py). The data directory is removed at the end. Figures print as the
table of `python -m bench`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, text

from bench.corpus import write_large_jsonl
from bench.report import Row, print_table, write_json
from bench.scale_load import (
    load_corpus,
    load_head_totals,
    load_hits,
    load_other_jobs,
    load_results,
)
from bench.storage import table_sizes
from bench.timing import median, timed
from bench.workers import LENSBATCH, Services

PG_SETTINGS = {"shared_buffers": "1GB", "work_mem": "64MB", "max_wal_size": "8GB",
               "checkpoint_timeout": "30min"}


def run_cli(services: Services, *args: str, rss: bool = False) -> tuple[float, float | None]:
    """(seconds, peak RSS in MB or None) of one `lensbatch` command; raises on failure."""
    command = [sys.executable, "-m", "bench.rss", LENSBATCH, *args] if rss else [LENSBATCH, *args]
    started = time.perf_counter()
    proc = subprocess.run(command, env=services.env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"lensbatch {' '.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr[-800:]}")
    peak = float(proc.stderr.rsplit("peak_rss_mb=", 1)[1]) if rss else None
    return seconds, peak


def query_and_command(name: str, query: Callable[[], object], services: Services,
                      args: tuple[str, ...], target: float) -> list[Row]:
    """The store's query in this process (median of 5) and the command (median of 3)."""
    query()  # the first reading warms the connection pool
    in_process = median([timed(query) for _ in range(5)])
    command = median([run_cli(services, *args)[0] for _ in range(3)])
    return [Row(name, f"`{' '.join(args)}`: the query", in_process, "s",
                target=f"< {target} s", met=in_process < target),
            Row(name, f"`{' '.join(args)}`: the command", command, "s",
                note="interpreter start-up included (s0)")]


def submit_rows(services: Services, work: Path, n_docs: int) -> list[Row]:
    """s1: a real `lensbatch submit` of n_docs generated short documents (into the
    database that already holds the big job), under bench.rss."""
    corpus = write_large_jsonl(work / "submit.jsonl", n_docs, 48, seed=1)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench.rss", LENSBATCH, "submit", str(corpus),
                           "--model", "gpt2-small-random"], env=services.env(),
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"submit failed: {proc.stderr[-800:]}")
    peak = float(proc.stderr.rsplit("peak_rss_mb=", 1)[1])
    size = corpus.stat().st_size / 1e6
    corpus.unlink()
    return [Row("s1", f"submit of {n_docs:,} documents ({size:,.0f} MB JSONL)", seconds, "s",
                note=f"{n_docs / seconds:,.0f} documents/s, COPY; enqueued too"),
            Row("s1", "submit peak RSS", peak, "MB", target="flat", note="scheduler process")]


def build(engine: Engine, n_docs: int, n_jobs: int) -> str:
    """The big job, bulk-loaded (bench/scale_load.py); its id."""
    started = time.perf_counter()
    job_id = "scale" + uuid.uuid4().hex[:11]
    load_corpus(engine, job_id, n_docs)
    load_results(engine, job_id, n_docs)
    hits, _ = load_hits(engine, job_id, n_docs)
    load_head_totals(engine, job_id, n_docs)
    load_other_jobs(engine, n_jobs - 1)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
    print(f"bench.scale: loaded {n_docs:,} documents, their results and {hits:,} hit rows "
          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return job_id


def storage_rows(engine: Engine, n_docs: int) -> list[Row]:
    """s2: bytes per document of the tables that grow with documents."""
    per_doc = ("results", "induction_hit_tokens", "head_scores", "activation_stats")
    sizes = {s.name: s.total_bytes for s in table_sizes(engine)}
    metric = sum(sizes.get(name, 0) for name in per_doc) / n_docs
    rows = [Row("s2", "per-document metric tables", metric, "bytes/doc", target="<= 2048",
                met=metric <= 2048, note=" + ".join(f"{name} {sizes.get(name, 0) / n_docs:.0f}"
                                                    for name in per_doc))]
    for name in ("job_documents", "documents"):
        rows.append(Row("s2", f"{name} (corpus)", sizes[name] / n_docs, "bytes/doc"))
    return rows


def query_rows(engine: Engine, services: Services, job_id: str) -> list[Row]:
    from lensbatch.store.head_queries import head_rows
    from lensbatch.store.progress import read_snapshot
    from lensbatch.store.queries import failed_documents, job_summary, list_jobs

    startup = median([run_cli(services, "--help")[0] for _ in range(3)])
    rows = [Row("s0", "`lensbatch --help` (interpreter start-up)", startup, "s")]
    rows += query_and_command(
        "s3", lambda: (job_summary(engine, job_id), failed_documents(engine, job_id)),
        services, ("status", job_id), 0.3)
    snapshot = median([timed(lambda: read_snapshot(engine, job_id)) for _ in range(5)])
    rows.append(Row("s3", "`status --watch`: one reading", snapshot, "s", target="< 0.3 s",
                    met=snapshot < 0.3))
    rows += query_and_command("s4", lambda: list_jobs(engine), services, ("jobs",), 1.0)
    rows += query_and_command("s5", lambda: head_rows(engine, job_id), services,
                              ("heads", job_id), 1.0)
    return rows


def export_rows(engine: Engine, services: Services, job_id: str, n_docs: int,
                work: Path) -> list[Row]:
    from scheduler.export import write_results_parquet

    path = str(work / "results.parquet")
    streaming = timed(lambda: write_results_parquet(engine, job_id, path))
    seconds, peak = run_cli(services, "results", job_id, "--format", "parquet", "--output",
                            path, rss=True)
    assert peak is not None
    rows = [Row("s6", "`results --format parquet`: the streaming", n_docs / streaming,
                "rows/s", target=">= 500,000", met=n_docs / streaming >= 500_000,
                note=f"{n_docs:,} rows in {streaming:.1f} s, in this process"),
            Row("s6", "`results --format parquet`: the command", n_docs / seconds, "rows/s",
                note=f"{seconds:.1f} s, start-up included"),
            Row("s6", "`results --format parquet` peak RSS", peak, "MB", target="< 500",
                met=peak < 500)]
    Path(path).unlink()
    for flags, what in ((["--no-tokens"], "`report --no-tokens`"),
                        ([], "`report` (hardest documents scored again: the model loaded)")):
        seconds, peak = run_cli(services, "report", job_id, "--output",
                                str(work / "report.html"), *flags, rss=True)
        assert peak is not None
        rows += [Row("s7", what, seconds, "s", target="< 60", met=seconds < 60),
                 Row("s7", f"{what} peak RSS", peak, "MB", target="< 1024",
                     met=peak < 1024)]
    return rows


def main(argv: list[str] | None = None) -> None:
    from lensbatch.store.db import ensure_schema
    from tests.services import PostgresServer, RedisServer

    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--docs", type=int, default=10_000_000)
    parser.add_argument("--jobs", type=int, default=100, help="jobs in the database, for `jobs`")
    parser.add_argument("--submit-docs", type=int, default=1_000_000,
                        help="documents of the `lensbatch submit` timed (s1)")
    parser.add_argument("--out", default=os.environ.get("OUT") or "bench-results")
    args = parser.parse_args(argv)
    # A SIGTERM unwinds like an exception, so that the servers and their data go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    redis, postgres = RedisServer(), PostgresServer()
    redis.start()
    postgres.start()
    try:
        engine = ensure_schema(postgres.url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for name, value in PG_SETTINGS.items():
                connection.execute(text(f"ALTER SYSTEM SET {name} = '{value}'"))
        engine.dispose()
        postgres.restart()
        with tempfile.TemporaryDirectory(prefix="lensbatch-scale-") as tmp:
            work = Path(tmp)
            services = Services(postgres.url, redis.url, str(work / "cache"))
            job_id = build(engine, args.docs, args.jobs)
            rows = storage_rows(engine, args.docs)
            rows += query_rows(engine, services, job_id)
            rows += export_rows(engine, services, job_id, args.docs, work)
            rows += submit_rows(services, work, args.submit_docs)
    finally:
        redis.stop()
        postgres.stop()
    print_table(rows)
    meta = {"docs": args.docs, "jobs": args.jobs, "seconds": round(time.perf_counter() - started),
            "cpus": os.cpu_count(), "load_average": os.getloadavg(), "device": "scale",
            "dtype": ""}
    path = write_json(Path(args.out), rows, meta)
    print(f"{time.perf_counter() - started:.0f} s; written to {path}")


if __name__ == "__main__":
    main()
