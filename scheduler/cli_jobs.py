"""`lensbatch resume`, `cancel` and `workers`: recovering and stopping jobs, seeing workers."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from sqlalchemy import Engine

from scheduler.cli import _engine, _settings, app, console

WORKER_COLUMNS = ("worker", "hostname", "device", "queues", "current task",
                  "documents done", "online", "last heartbeat")


@app.command()
def resume(
    job: Annotated[str, typer.Argument(help="Job id.")],
    failed: Annotated[bool, typer.Option("--failed", help="Retry only the documents "
                                         "recorded as failed.")] = False,
) -> None:
    """Queue again the documents of a job that have no result (after a broker loss).

    Example: lensbatch resume 3f2a9c1e0b7d4e21 --failed
    """
    from scheduler.enqueue import check_broker, enqueue
    from scheduler.queries import job_summary
    from scheduler.recovery import plan_resume

    settings = _settings()
    engine = _engine()
    job_summary(engine, job)  # a wrong id is named before the broker is tried
    check_broker(settings)  # before the job is touched: nothing changes without a broker
    plan = plan_resume(engine, job, failed_only=failed)
    enqueue(settings, plan.job_id, plan.tasks, plan.queue)
    kind = "failed documents" if failed else "documents"
    print(f"re-enqueued {len(plan.seqs)} {kind} in {len(plan.tasks)} tasks on queue "
          f"{plan.queue}")


@app.command()
def cancel(job: Annotated[str, typer.Argument(help="Job id.")]) -> None:
    """Cancel a job: workers drop its remaining tasks without evaluating them.

    Example: lensbatch cancel 3f2a9c1e0b7d4e21
    """
    from scheduler.recovery import cancel_job

    cancel_job(_engine(), job)
    print(f"job {job} cancelled")


def print_workers(engine: Engine) -> None:
    from scheduler.output import write_rows
    from scheduler.recovery import worker_rows

    rows = worker_rows(engine)
    if rows:
        write_rows(rows, WORKER_COLUMNS, "table", sys.stdout)
    else:
        print("no workers have registered")


def print_failed_documents(engine: Engine, job: str) -> None:
    from scheduler.output import write_rows
    from scheduler.recovery import failed_documents

    rows = failed_documents(engine, job)
    if rows:
        console.print(f"{len(rows)} failed documents (retry with: lensbatch resume {job} "
                      "--failed)", highlight=False)
        write_rows(rows, ("doc_id", "attempts", "error"), "table", sys.stdout)


@app.command()
def workers() -> None:
    """List workers: hostname, device, current task, documents done, last heartbeat.

    Example: lensbatch workers
    """
    print_workers(_engine())
