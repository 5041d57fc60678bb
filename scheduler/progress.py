"""Live progress of a job, counted from the database, for `status --watch` and `run`.

A terminal gets a rich progress bar; anything else (a log file, a pipe, CI) gets one
plain key=value line per refresh, so logs stay readable and greppable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from sqlalchemy import Engine

from lensbatch.store.progress import Snapshot, read_snapshot


@dataclass
class Rate:
    """Tokens per second since the first reading, and the ETA it implies."""

    first: Snapshot | None = None
    last: Snapshot | None = field(default=None)

    def update(self, snap: Snapshot) -> None:
        if self.first is None:
            self.first = snap
        self.last = snap

    def tokens_per_s(self) -> float | None:
        if self.first is None or self.last is None:
            return None
        seconds = self.last.at - self.first.at
        tokens = self.last.tokens_done - self.first.tokens_done
        return tokens / seconds if seconds > 0 and tokens > 0 else None

    def eta_s(self) -> float | None:
        rate = self.tokens_per_s()
        if rate is None or self.last is None:
            return None
        return max(self.last.tokens_total - self.last.tokens_done, 0) / rate


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    if hours:
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{rest // 60}:{rest % 60:02d}"


# What runs a `lensbatch run` job: this process, not the queue's workers.
LOCAL_RUNNER = "local process"


def plain_line(snap: Snapshot, rate: Rate, runner: str | None = None) -> str:
    """The non-terminal form: one key=value line (tokens_total is `~`-prefixed while
    estimated). Its last field is the active workers, or `runner=` what runs the job
    when it is not the queue's workers (`runner=local-process`)."""
    speed = rate.tokens_per_s()
    approx = "" if snap.finished else "~"
    runs = f"workers={snap.workers}" if runner is None else f"runner={runner.replace(' ', '-')}"
    return (
        f"job={snap.job_id} status={snap.status} documents={snap.docs_done}/{snap.docs_total} "
        f"tokens={snap.tokens_done}/{approx}{snap.tokens_total} "
        f"tokens_per_s={'-' if speed is None else f'{speed:.1f}'} "
        f"eta={_duration(rate.eta_s())} failed={snap.failed} {runs}"
    )


class ProgressView:
    """Shows snapshots: a rich bar on a terminal, plain lines otherwise. `runner` names
    what runs the job when it is not the queue's workers (`run`: LOCAL_RUNNER), shown
    instead of the count of active workers."""

    def __init__(self, out: IO[str], terminal: bool, runner: str | None = None) -> None:
        self.out = out
        self.terminal = terminal
        self.runner = runner
        self.rate = Rate()
        self._progress: Progress | None = None
        self._bar: TaskID | None = None

    def __enter__(self) -> ProgressView:
        if self.terminal:
            # Fits 80 columns (90 with a runner); the job id goes on a line of its own
            # above the bar.
            columns = (BarColumn(bar_width=12),
                       TextColumn("{task.fields[docs]} docs"),
                       TextColumn("{task.fields[tokens]} tok"),
                       TextColumn("{task.fields[speed]} tok/s"),
                       TextColumn("ETA {task.fields[eta]}"),
                       TextColumn("{task.fields[failed]} failed"),
                       TextColumn("{task.fields[runs]}"))
            self._progress = Progress(*columns, console=Console(file=self.out))
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def show(self, snap: Snapshot) -> None:
        self.rate.update(snap)
        if self._progress is None:
            self.out.write(plain_line(snap, self.rate, self.runner) + "\n")
            self.out.flush()
            return
        speed = self.rate.tokens_per_s()
        fields: dict[str, Any] = {  # rich passes these to the TextColumns
            "docs": f"{snap.docs_done}/{snap.docs_total}",
            "tokens": f"{snap.tokens_done}/{'' if snap.finished else '~'}{snap.tokens_total}",
            "speed": "-" if speed is None else f"{speed:.0f}",
            "eta": _duration(self.rate.eta_s()), "failed": snap.failed,
            "runs": f"{snap.workers} workers" if self.runner is None
            else f"runner: {self.runner}",
        }
        if self._bar is None:
            self._progress.console.print(f"[bold]job {snap.job_id}[/bold]", highlight=False)
            self._bar = self._progress.add_task("job", total=snap.docs_total, **fields)
        self._progress.update(self._bar, completed=snap.docs_done, total=snap.docs_total,
                              **fields)


def watch(engine: Engine, job_id: str, view: ProgressView, interval: float = 2.0) -> Snapshot:
    """Show the job's progress every `interval` seconds until it finishes."""
    while True:
        snap = read_snapshot(engine, job_id)
        view.show(snap)
        if snap.finished:
            return snap
        time.sleep(interval)
