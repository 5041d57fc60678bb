"""Celery's prefork pool, telling the worker's parent process when a pool process exits.

Celery replaces a pool process that dies but tells the application nothing about it:
no signal fires in the parent, and worker_process_shutdown runs only in a process that
exits cleanly. billiard reaps an exited process and flushes its queues before it sends
the task the process was running back to the queue; this pool reports the exit there,
once per process: its pid and how it exited ("signal 6 (SIGABRT)").
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from celery.concurrency.asynpool import AsynPool
from celery.concurrency.prefork import TaskPool

# Called in the parent with the pid of a pool process that exited and its exit status.
ExitHook = Callable[[int, str], None]


def exit_status(exitcode: int | None) -> str:
    """billiard's exit code as words: -6 is "signal 6 (SIGABRT)", 1 "exit code 1"."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
        return f"signal {-exitcode} ({name})"
    return f"exit code {exitcode}"


def reporting_pool(on_exit: ExitHook) -> type[TaskPool]:
    """A prefork pool class (for the worker_pool setting) that calls `on_exit` in the
    parent for every pool process that exits, before its task is requeued."""

    class ReportingAsynPool(AsynPool):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.reported: set[int] = set()
            super().__init__(*args, **kwargs)

        def process_flush_queues(self, proc: Any) -> None:
            # Also called for live processes when the broker connection restarts, and a
            # second time for an exited one: report each exited process once.
            super().process_flush_queues(proc)
            if proc.exitcode is not None and proc.pid not in self.reported:
                self.reported.add(proc.pid)
                on_exit(proc.pid, exit_status(proc.exitcode))

    class ReportingTaskPool(TaskPool):  # type: ignore[misc]
        Pool = ReportingAsynPool

    return ReportingTaskPool
