"""What `python -m bench.fleet` reads at each end of its window: committed documents,
CPU time of PostgreSQL, the consumers and Redis (from /proc), the machine's busy time,
PostgreSQL's committed transactions and WAL position; and the consumers' task lines."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, select, text

from bench.timing import descendants
from lensbatch.store import schema

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Counters:
    at: float  # time.time()
    docs: int
    pg_cpu: float  # seconds, PostgreSQL's processes (exited backends included)
    consumer_cpu: float
    redis_cpu: float
    busy: float  # seconds of the machine's CPUs not idle
    xacts: int  # committed transactions, all databases
    wal: int  # bytes of WAL written since the cluster started


def cpu_seconds(pid: int) -> float:
    """User and system time of `pid` and its descendants (and of those it reaped)."""
    total = 0
    for proc in descendants(pid):
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / TICKS


def machine_busy() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS  # all but idle and iowait


def read_counters(engine: Engine, job_id: str, pids: dict[str, int],
                  consumers: list[int]) -> Counters:
    p = schema.job_progress
    with engine.connect() as connection:
        docs = connection.scalar(select(func.coalesce(func.sum(p.c.documents_done), 0))
                                 .where(p.c.job_id == job_id))
        xacts = connection.scalar(text("SELECT sum(xact_commit) FROM pg_stat_database"))
        wal = connection.scalar(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"))
    return Counters(time.time(), int(docs or 0), cpu_seconds(pids["postgres"]),
                    sum(cpu_seconds(pid) for pid in consumers), cpu_seconds(pids["redis"]),
                    machine_busy(), int(xacts or 0), int(wal or 0))


@dataclass(frozen=True)
class Window:
    seconds: float
    tasks_per_s: float
    docs_per_s: float
    pg_cpu_ms: float  # per task
    xacts: float  # per task
    wal_kb: float  # per task
    pg_cores: float
    consumer_cores: float
    redis_cores: float
    machine_busy: float  # share of all the machine's CPUs


def steady_window(first: Counters, last: Counters, docs_per_task: int) -> Window:
    seconds = last.at - first.at
    docs = last.docs - first.docs
    tasks = max(docs / docs_per_task, 1e-9)
    return Window(
        seconds, tasks / seconds, docs / seconds,
        1000 * (last.pg_cpu - first.pg_cpu) / tasks, (last.xacts - first.xacts) / tasks,
        (last.wal - first.wal) / 1024 / tasks, (last.pg_cpu - first.pg_cpu) / seconds,
        (last.consumer_cpu - first.consumer_cpu) / seconds,
        (last.redis_cpu - first.redis_cpu) / seconds,
        (last.busy - first.busy) / seconds / (os.cpu_count() or 1))


def task_lines(log: Path, start: float, end: float) -> list[list[float]]:
    """The consumers' task lines (started, claimed, evaluated, written, ended, documents)
    of the tasks that ran, wholly or partly, inside [start, end]."""
    if not log.exists():
        return []
    lines = [[float(v) for v in line.split()] for line in log.read_text().splitlines() if line]
    return [line for line in lines if line[4] > start and line[0] < end]


def busy_seconds(lines: list[list[float]], start: float, end: float) -> float:
    """The consumers' time inside tasks within [start, end] (tasks cut at its edges)."""
    return sum(max(0.0, min(line[4], end) - max(line[0], start)) for line in lines)
