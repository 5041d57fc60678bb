"""Helpers for tests that kill pool processes: by pid, mid-task, or from inside through
a test-only hook (tests/abort_hook) that aborts the process on a marker word."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select, text

from lensbatch.store import schema
from tests.faults import Probe, wait_for

ABORT_HOOK = Path(__file__).resolve().parent / "abort_hook"
ABORT_WORD = "Zyzzyva"  # a document containing it kills the pool process that tokenizes it


def abort_hook_env() -> dict[str, str]:
    """Environment for a worker whose pool processes die of SIGABRT on ABORT_WORD."""
    path = os.pathsep.join(p for p in (str(ABORT_HOOK), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "LENSBATCH_TEST_ABORT_WORD": ABORT_WORD}


def task_seqs(task: str) -> list[int]:
    """current_task is 'JOB:FIRST-LAST'."""
    first, last = task.rsplit(":", 1)[1].split("-")
    return list(range(int(first), int(last) + 1))


def pid_of(name: str) -> int:
    """The pid of a workers-table name (hostname:pid)."""
    return int(name.rsplit(":", 1)[1])


def kill_mid_task(probe: Probe, name: str, job: str, kill: Callable[[], None],
                  timeout: float = 90) -> list[int]:
    """Call `kill` (ending pool process `name`) while it evaluates a task of `job` whose
    results are not written yet; return that task's seqs.

    The check and the kill happen while this side holds the results table in EXCLUSIVE mode
    (reads pass, writes wait; taking it waits for any open writer to commit): a task that is
    current and has no results then cannot commit before its worker dies, whatever the
    timing. A task already written (its worker between commit and clearing current_task)
    is passed over for the worker's next one."""
    w, r = schema.workers, schema.results
    killed: list[int] = []

    def killed_mid_task() -> bool:
        with probe.engine.begin() as connection:
            connection.execute(text(f"LOCK TABLE {r.name} IN EXCLUSIVE MODE"))
            task = connection.scalar(select(w.c.current_task).where(w.c.name == name))
            if not task or not str(task).startswith(f"{job}:"):
                return False
            seqs = task_seqs(str(task))
            if connection.scalar(select(func.count()).select_from(r).where(
                    r.c.job_id == job, r.c.seq.in_(seqs))):
                return False
            kill()  # the lock is released only once the process is dead
            killed.extend(seqs)
            return True

    wait_for(killed_mid_task, timeout, f"{name} killed mid-task")
    return killed

