"""`python -m bench.fleet`: one Redis, one PostgreSQL and many consumers, with the model
replaced by a stand-in of fixed cost (bench/fleet_worker.py).

For each number of consumers (--consumers 16,64,256: Celery thread-pool consumers spread
over a few processes) a fresh job of short tasks is queued and run; once every consumer
is busy, a window of --window seconds is measured:

- tasks/s and documents/s committed, against the ideal (consumers / task seconds);
- where a task's time goes: claim, write (both wall, lock waits included), and the gap
  between a consumer's tasks (broker round trips, acknowledgement, bookkeeping);
- the database's cost per task: PostgreSQL CPU ms (its processes' CPU time over the
  window / tasks), transactions and WAL bytes per task; the consumers' and Redis's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, select, text

from bench.fleet_probe import (
    Counters,
    busy_seconds,
    read_counters,
    steady_window,
    task_lines,
)
from bench.report import Row, print_table, write_json
from bench.workers import Services, stop_processes
from lensbatch.jobspec import JobSpec
from lensbatch.settings import Settings
from lensbatch.store import schema
from lensbatch.store.jobs import create_job
from scheduler.enqueue import enqueue

TEXT = "The keeper lit the lamp at dusk and wrote the hour in the harbour log."


@dataclass(frozen=True)
class Level:
    consumers: int
    processes: int
    task_seconds: float
    docs_per_task: int
    window: float


def queue_job(engine: Engine, services: Services, level: Level, work: Path) -> str:
    """Enough equal tasks to keep every consumer busy past the window."""
    rounds = int((level.window + 4 * level.task_seconds) / level.task_seconds) + 3
    n_docs = level.consumers * rounds * level.docs_per_task
    corpus = work / f"fleet-{level.consumers}.jsonl"
    with corpus.open("w", encoding="utf-8") as out:
        for i in range(n_docs):
            out.write(json.dumps({"id": i, "text": f"{i:09d} {TEXT}"}) + "\n")
    per_doc = len(f"{0:09d} {TEXT}") // 4 + 1
    planned = create_job(engine, str(corpus), JobSpec(task_tokens=per_doc * level.docs_per_task))
    enqueue(Settings(broker_url=services.broker_url), planned.job_id, planned.tasks, "cpu")
    return planned.job_id


def start_consumers(services: Services, level: Level, log: Path) -> list[subprocess.Popen[bytes]]:
    threads = level.consumers // level.processes
    env = {**services.env(), "FLEET_TASK_SECONDS": str(level.task_seconds),
           "FLEET_THREADS": str(threads), "FLEET_LOG": str(log)}
    out = log.with_suffix(".out").open("ab")
    return [subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.fleet_worker", "worker", "-P", "threads",
         "-c", str(threads), "-Q", "cpu", "-l", "WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat", "-n", f"fleet{i}@%h"],
        # A session of its own: a signal a consumer sends its process group stays there.
        env=env, stdout=out, stderr=out, start_new_session=True)
        for i in range(level.processes)]


def documents_done(engine: Engine, job_id: str) -> int:
    p = schema.job_progress
    with engine.connect() as connection:
        return int(connection.scalar(select(func.coalesce(func.sum(p.c.documents_done), 0))
                                     .where(p.c.job_id == job_id)) or 0)


def run_level(engine: Engine, services: Services, level: Level, pids: dict[str, int],
              work: Path) -> list[Row]:
    job_id = queue_job(engine, services, level, work)
    log = work / f"fleet-{level.consumers}.log"
    consumers = start_consumers(services, level, log)
    try:
        # Busy: every consumer has committed a task (or a generous time has passed).
        deadline = time.monotonic() + 60 + 4 * level.task_seconds
        while (documents_done(engine, job_id) < level.consumers * level.docs_per_task
               and time.monotonic() < deadline):
            time.sleep(0.2)
        first = read_counters(engine, job_id, pids, [p.pid for p in consumers])
        time.sleep(level.window)
        last = read_counters(engine, job_id, pids, [p.pid for p in consumers])
    finally:
        stop_processes(consumers, 60)
    lines = task_lines(log, first.at, last.at)
    idle = level.consumers * (last.at - first.at) - busy_seconds(lines, first.at, last.at)
    inside = [line for line in lines if line[0] >= first.at and line[4] <= last.at]
    return level_rows(level, first, last, inside, idle)


def quantiles(seconds: list[float]) -> tuple[float, float]:
    """(median, 95th percentile) in ms."""
    ordered = sorted(seconds) or [0.0]
    return 1000 * ordered[len(ordered) // 2], 1000 * ordered[int(len(ordered) * 0.95)]


def level_rows(level: Level, first: Counters, last: Counters, lines: list[list[float]],
               idle: float) -> list[Row]:
    """`lines`: the tasks wholly inside the window; `idle`: the consumers' seconds
    outside any task during it."""
    w = steady_window(first, last, level.docs_per_task)
    ideal = level.consumers / level.task_seconds
    tag = f"f{level.consumers}"
    claim = quantiles([line[1] - line[0] for line in lines])
    write = quantiles([line[3] - line[2] for line in lines])
    gap = idle / max(w.tasks_per_s * w.seconds, 1e-9)
    return [
        Row(tag, f"{level.consumers} consumers: tasks committed", w.tasks_per_s, "tasks/s",
            w.tasks_per_s / ideal, ">= 0.9 of ideal" if level.consumers == 64 else "",
            (w.tasks_per_s / ideal >= 0.9) if level.consumers == 64 else None,
            f"ideal {ideal:.1f}; {w.docs_per_s:,.0f} documents/s; {level.processes} processes"),
        Row(tag, "claim per task (median)", claim[0], "ms", note=f"p95 {claim[1]:.0f} ms"),
        Row(tag, "write per task (median)", write[0], "ms", note=f"p95 {write[1]:.0f} ms"),
        Row(tag, "gap between a consumer's tasks (broker, ack, bookkeeping)", 1000 * gap, "ms",
            note=f"fixed cost {1000 * level.task_seconds:.0f} ms per task"),
        Row(tag, "PostgreSQL CPU per task", w.pg_cpu_ms, "ms",
            note=f"{w.xacts:.1f} transactions, {w.wal_kb:.0f} KB WAL per task; PostgreSQL "
                 f"{w.pg_cores:.2f} cores, consumers {w.consumer_cores:.2f}, Redis "
                 f"{w.redis_cores:.2f}, machine {w.machine_busy:.0%} busy"),
    ]


def main(argv: list[str] | None = None) -> None:
    from lensbatch.store.db import ensure_schema
    from tests.services import PostgresServer, RedisServer

    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--consumers", default="16,64,256")
    parser.add_argument("--processes", default="1,2,4", help="consumer processes per level")
    parser.add_argument("--task-seconds", type=float, default=2.0)
    parser.add_argument("--docs-per-task", type=int, default=32)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--out", default=os.environ.get("OUT") or "bench-results")
    args = parser.parse_args(argv)
    # A SIGTERM unwinds like an exception, so that the servers and their data go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    postgres = PostgresServer(durable=True)  # fsync and synchronous commit on
    postgres.start()
    rows: list[Row] = []
    try:
        engine = ensure_schema(postgres.url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ALTER SYSTEM SET max_connections = 400"))
        engine.dispose()
        postgres.restart()
        for consumers, processes in zip(map(int, args.consumers.split(",")),
                                        map(int, args.processes.split(",")), strict=True):
            redis = RedisServer()
            redis.start()
            try:
                with tempfile.TemporaryDirectory(prefix="lensbatch-fleet-") as tmp:
                    level = Level(consumers, processes, args.task_seconds, args.docs_per_task,
                                  args.window)
                    services = Services(postgres.url, redis.url, str(Path(tmp) / "cache"))
                    pids = {"postgres": postgres.pid(), "redis": redis.process.pid}  # type: ignore[union-attr]
                    measured = run_level(engine, services, level, pids, Path(tmp))
                    rows += measured
                    print(f"bench.fleet: {consumers} consumers done "
                          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
                    print_table(measured)  # each level as it comes
            finally:
                redis.stop()
    finally:
        postgres.stop()
    print_table(rows)
    meta = {"device": "fleet", "dtype": "", "task_seconds": args.task_seconds,
            "docs_per_task": args.docs_per_task, "window": args.window,
            "cpus": os.cpu_count(), "load_average": os.getloadavg()}
    print(f"{time.perf_counter() - started:.0f} s; written to "
          f"{write_json(Path(args.out), rows, meta)}")


if __name__ == "__main__":
    main()
