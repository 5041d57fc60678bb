"""Real `lensbatch worker` processes on a real Redis, and waiting for jobs to finish."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from bench.timing import peak_rss_mb
from lensbatch.status import FINISHED, JobStatus
from lensbatch.store.queries import job_status

LENSBATCH = str(Path(sys.executable).parent / "lensbatch")


@dataclass(frozen=True)
class Services:
    database_url: str
    broker_url: str
    cache_dir: str

    def env(self, threads: int | None = None) -> dict[str, str]:
        env = {**os.environ, "LENSBATCH_DATABASE_URL": self.database_url,
               "LENSBATCH_BROKER_URL": self.broker_url, "LENSBATCH_CACHE_DIR": self.cache_dir,
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
        if threads is not None:
            # torch reads this once at start-up: the worker's intra-op thread count.
            env["OMP_NUM_THREADS"] = str(threads)
        return env


@contextmanager
def workers(services: Services, count: int, threads: int, log: Path) -> Iterator[list[int]]:
    """`count` single-process workers; yields their pids and stops them on exit."""
    procs = []
    with log.open("ab") as out:
        for _ in range(count):
            procs.append(subprocess.Popen(
                [LENSBATCH, "worker", "--queues", "cpu", "--concurrency", "1",
                 "--device", "cpu", "--loglevel", "WARNING"],
                env=services.env(threads), stdout=out, stderr=out,
            ))
    try:
        yield [p.pid for p in procs]
    finally:
        stop_processes(procs, 30)


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM to each, then wait `timeout` s for each before killing it."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_done(engine: Engine, job_id: str, timeout: float) -> float:
    """Poll the database until the job is done; return the time it finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job_status(engine, job_id)
        if status == JobStatus.DONE:
            return time.perf_counter()
        if status in FINISHED:
            raise RuntimeError(f"job {job_id} ended {status}")
        time.sleep(0.01)  # a light query: the finish time is exact to ~10 ms
    raise TimeoutError(f"job {job_id} not done after {timeout}s")


def peak_of(pids: list[int]) -> float:
    return max(peak_rss_mb(pid) for pid in pids)
