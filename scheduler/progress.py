"""Live progress of a job, counted from the database, for `status --watch` and `run`.

A terminal gets a rich progress bar; anything else (a log file, a pipe, CI) gets one
plain key=value line per refresh, so logs stay readable and greppable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from sqlalchemy import Engine, func, select

from lensbatch import schema
from lensbatch.docstate import documents_without_result
from lensbatch.errors import JobNotFound
from scheduler.jobs import CHARS_PER_TOKEN

# A worker whose heartbeat is older than this is not counted as active.
HEARTBEAT_FRESH_S = 120
FINISHED = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class Snapshot:
    """One reading of a job's progress."""

    job_id: str
    status: str
    docs_done: int
    docs_total: int
    tokens_done: int
    tokens_total: int  # estimated from characters until the job is finished
    failed: int
    workers: int
    at: float  # time.monotonic() of the reading

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _failed_documents(engine: Engine, job_id: str) -> int:
    """Documents that failed for good (every attempt used)."""
    f = schema.document_failures
    with engine.connect() as connection:
        return int(connection.scalar(
            select(func.count()).select_from(f).where(f.c.job_id == job_id, f.c.final.is_(True))
        ) or 0)


def _active_workers(engine: Engine) -> int:
    w = schema.workers
    cutoff = datetime.now(UTC) - timedelta(seconds=HEARTBEAT_FRESH_S)
    with engine.connect() as connection:
        rows = connection.execute(select(w.c.heartbeat_at).where(w.c.online.is_(True))).all()
    # SQLite returns naive datetimes for timezone-aware columns; they are stored in UTC.
    stamps = [r.heartbeat_at if r.heartbeat_at.tzinfo else r.heartbeat_at.replace(tzinfo=UTC)
              for r in rows]
    return sum(stamp >= cutoff for stamp in stamps)


def read_snapshot(engine: Engine, job_id: str) -> Snapshot:
    r, docs = schema.results, schema.documents
    with engine.connect() as connection:
        job = connection.execute(
            select(schema.jobs.c.status, schema.jobs.c.n_documents)
            .where(schema.jobs.c.id == job_id)
        ).first()
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        done, tokens = connection.execute(
            select(func.count(), func.coalesce(func.sum(r.c.n_tokens), 0))
            .where(r.c.job_id == job_id)
        ).one()
        # Characters of the documents still to do (no result, not failed for good),
        # converted with the planner's estimate.
        pending_docs, pending_chars = connection.execute(documents_without_result(
            job_id, func.count(), func.coalesce(func.sum(docs.c.n_chars), 0))).one()
    # The planner's estimate (scheduler.jobs.estimate_tokens), summed over what is left.
    estimate = int(pending_chars or 0) // CHARS_PER_TOKEN + int(pending_docs)
    return Snapshot(
        job_id=job_id, status=job.status, docs_done=int(done), docs_total=int(job.n_documents),
        tokens_done=int(tokens), tokens_total=int(tokens) + estimate,
        failed=_failed_documents(engine, job_id), workers=_active_workers(engine),
        at=time.monotonic(),
    )


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


def plain_line(snap: Snapshot, rate: Rate) -> str:
    """The non-terminal form: one key=value line (tokens_total is `~`-prefixed while
    estimated)."""
    speed = rate.tokens_per_s()
    approx = "" if snap.finished else "~"
    return (
        f"job={snap.job_id} status={snap.status} documents={snap.docs_done}/{snap.docs_total} "
        f"tokens={snap.tokens_done}/{approx}{snap.tokens_total} "
        f"tokens_per_s={'-' if speed is None else f'{speed:.1f}'} "
        f"eta={_duration(rate.eta_s())} failed={snap.failed} workers={snap.workers}"
    )


class ProgressView:
    """Shows snapshots: a rich bar on a terminal, plain lines otherwise."""

    def __init__(self, out: IO[str], terminal: bool) -> None:
        self.out = out
        self.terminal = terminal
        self.rate = Rate()
        self._progress: Progress | None = None
        self._bar: TaskID | None = None

    def __enter__(self) -> ProgressView:
        if self.terminal:
            # Fits 80 columns; the job id goes on a line of its own above the bar.
            columns = (BarColumn(bar_width=12),
                       TextColumn("{task.fields[docs]} docs"),
                       TextColumn("{task.fields[tokens]} tok"),
                       TextColumn("{task.fields[speed]} tok/s"),
                       TextColumn("ETA {task.fields[eta]}"),
                       TextColumn("{task.fields[failed]} failed"),
                       TextColumn("{task.fields[workers]} workers"))
            self._progress = Progress(*columns, console=Console(file=self.out))
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def show(self, snap: Snapshot) -> None:
        self.rate.update(snap)
        if self._progress is None:
            self.out.write(plain_line(snap, self.rate) + "\n")
            self.out.flush()
            return
        speed = self.rate.tokens_per_s()
        fields: dict[str, Any] = {  # rich passes these to the TextColumns
            "docs": f"{snap.docs_done}/{snap.docs_total}",
            "tokens": f"{snap.tokens_done}/{'' if snap.finished else '~'}{snap.tokens_total}",
            "speed": "-" if speed is None else f"{speed:.0f}",
            "eta": _duration(self.rate.eta_s()), "failed": snap.failed, "workers": snap.workers,
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
