"""Commands about jobs and workers: `status`, `jobs`, `resume`, `cancel`, `workers`,
and `db upgrade`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine

from scheduler.context import invocation
from scheduler.jobref import job_or_sweep_argument
from scheduler.options import JobId

console = Console()
WORKER_COLUMNS = ("worker", "hostname", "device", "queues", "current task",
                  "documents done", "online", "last heartbeat")


def print_workers(engine: Engine, everything: bool = False) -> None:
    from lensbatch.store.workers import worker_rows
    from scheduler.output import write_rows

    rows = worker_rows(engine, everything)
    if rows:
        write_rows(rows, WORKER_COLUMNS, "table", sys.stdout)
    else:
        print("no workers have registered")


def print_jobs(engine: Engine) -> None:
    from lensbatch.store.queries import list_jobs
    from scheduler.output import write_rows

    rows = [{"job": s.job_id, "model": s.label, "corpus": corpus_name(s.corpus),
             # the sweep by the first characters of its id (enough for any command)
             "sweep": "-" if s.sweep is None else f"{s.sweep.sweep_id[:8]}/{s.sweep.index + 1}",
             "status": s.status, "documents": f"{s.n_done}/{s.n_documents}", "loss": s.loss,
             "created": s.created_at.strftime("%m-%d %H:%M") if s.created_at else "-"}
            for s in list_jobs(engine)]
    write_rows(rows, ("job", "model", "corpus", "sweep", "status", "documents", "loss",
                      "created"), "table", sys.stdout)


def corpus_name(corpus: str) -> str:
    """A job's corpus as `jobs` lists it: the file's or directory's name (- for standard
    input)."""
    from pathlib import PurePath

    return PurePath(corpus).name or corpus


def print_sweep(engine: Engine, sweep_id: str) -> None:
    """`status SWEEP`: one row per job, in the sweep's order, rates with intervals."""
    from lensbatch.compare import RATES
    from lensbatch.store.queries import job_summary
    from lensbatch.store.sweeps import sweep_jobs
    from scheduler.compare_view import job_intervals
    from scheduler.output import interval_note, interval_text, write_rows

    rows, largest = [], 0
    for member in sweep_jobs(engine, sweep_id):
        summary = job_summary(engine, member.job_id)
        intervals = job_intervals(engine, summary)
        largest = max(largest, summary.n_done)
        rows.append({"#": member.index + 1, "job": member.job_id, "model": summary.label,
                     "step": member.step, "status": summary.status,
                     "documents": f"{summary.n_done}/{summary.n_documents}",
                     **{m.label: interval_text(intervals[m.name]) for m in RATES}})
    print(f"sweep {sweep_id}: {len(rows)} jobs over the same documents")
    write_rows(rows, ("#", "job", "model", "step", "status", "documents",
                      *(m.label for m in RATES)), "table", sys.stdout)
    print(interval_note(largest))


def status(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Argument(
        help="Job id, or a sweep id (its jobs), or the first characters of one; default: "
        "recent jobs.", callback=job_or_sweep_argument)] = None,
    watch: Annotated[bool, typer.Option(help="Live progress until the job finishes: "
                                        "documents, tokens, tokens/s, ETA, failed "
                                        "documents, active workers. Plain lines when "
                                        "stdout is not a terminal.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Show a job's progress, counted from results in the database; for a finished job,
    loss and accuracy with their 95% intervals. A sweep id lists the sweep's jobs.

    Example: lensbatch status 3f2a9c1e0b7d4e21 --watch
    """
    from lensbatch.status import FINISHED
    from lensbatch.store.queries import failed_documents, job_summary
    from lensbatch.store.sweeps import sweep_jobs
    from scheduler.compare_view import job_intervals
    from scheduler.model_notes import weights_line
    from scheduler.output import summary_table, write_rows

    engine = invocation(ctx).engine
    if job is None:
        print_jobs(engine)
        print_workers(engine)
        return
    if not watch and sweep_jobs(engine, job):
        print_sweep(engine, job)
        return
    if watch:
        from scheduler.progress import ProgressView
        from scheduler.progress import watch as watch_job

        with ProgressView(sys.stdout, terminal=sys.stdout.isatty()) as view:
            watch_job(engine, job, view, interval)
    summary = job_summary(engine, job)
    intervals = job_intervals(engine, summary) if summary.status in FINISHED else None
    console.print(summary_table(summary, intervals=intervals))
    if (note := weights_line(summary.model)) is not None:
        print(note)
    failed = failed_documents(engine, job)
    if failed:
        console.print(f"{len(failed)} failed documents (retry with: lensbatch resume {job} "
                      "--failed)", highlight=False)
        write_rows(failed, ("doc_id", "attempts", "error"), "table", sys.stdout)


def jobs(ctx: typer.Context) -> None:
    """List recent jobs. Example: lensbatch jobs"""
    print_jobs(invocation(ctx).engine)


def resume(
    ctx: typer.Context,
    job: JobId,
    failed: Annotated[bool, typer.Option("--failed", help="Retry only the documents "
                                         "recorded as failed.")] = False,
) -> None:
    """Queue again the documents of a job that have no result (after a broker loss).
    Without a broker, `lensbatch run --resume JOB` continues the job here instead.

    Example: lensbatch resume 3f2a9c1e0b7d4e21 --failed
    """
    from lensbatch.errors import BrokerUnavailable
    from lensbatch.store.jobs import plan_resume
    from lensbatch.store.queries import job_summary
    from scheduler.enqueue import check_broker, enqueue

    state = invocation(ctx)
    job_summary(state.engine, job)  # a wrong id is named before the broker is tried
    try:  # before the job is touched: nothing changes without one
        check_broker(state.settings)
    except BrokerUnavailable as exc:
        if failed:  # `run --resume` leaves the documents failed for good as they are
            raise
        from scheduler.nextsteps import prefix

        raise BrokerUnavailable(f"{exc}; to continue the job here, without a broker: "
                                f"{prefix(state.db_option)} run --resume {job}") from None
    plan = plan_resume(state.engine, job, failed_only=failed)
    enqueue(state.settings, plan.job_id, plan.tasks, plan.queue)
    kind = "failed documents" if failed else "documents"
    print(f"re-enqueued {len(plan.seqs)} {kind} in {len(plan.tasks)} tasks on queue "
          f"{plan.queue}")


def cancel(ctx: typer.Context, job: JobId) -> None:
    """Cancel a job: workers drop its remaining tasks without evaluating them.

    Example: lensbatch cancel 3f2a9c1e0b7d4e21
    """
    from lensbatch.store.jobs import cancel_job

    cancel_job(invocation(ctx).engine, job)
    print(f"job {job} cancelled")


def workers(
    ctx: typer.Context,
    everything: Annotated[bool, typer.Option(
        "--all", help="Also the pool processes silent for over 10 minutes (stopped, "
        "died or lost).")] = False,
) -> None:
    """List pool processes: hostname, device, current task, documents done, online (or
    how it exited), last heartbeat. Those silent for over 10 minutes are left out.

    Example: lensbatch workers --all
    """
    print_workers(invocation(ctx).engine, everything)


def db_upgrade(ctx: typer.Context) -> None:
    """Apply database migrations (alembic upgrade head). Example: lensbatch db upgrade"""
    from lensbatch.settings import mask_url
    from lensbatch.store.db import upgrade

    settings = invocation(ctx).settings
    upgrade(settings.database_url)
    print(f"database {mask_url(settings.database_url)} is at the newest schema")
