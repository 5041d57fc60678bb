"""What a JOB or SWEEP argument names: a whole id, or a unique start of one (at least
MIN_PREFIX characters), resolved to the whole id before the command runs.

Commands that read one job (`results`, `heads`, `tokens`, `export`, `cancel`, `resume`)
refuse a sweep id with one line pointing to the commands that take one and listing the
sweep's jobs; `status` and `report` take either; `compare` takes any mix.
"""

from __future__ import annotations

import typer
from sqlalchemy import Engine

from lensbatch.errors import JobNotFound, UserError
from lensbatch.store.jobids import find
from scheduler.context import invocation


def sweep_refused(engine: Engine, sweep_id: str, command: str) -> UserError:
    from lensbatch.store.sweeps import sweep_jobs

    members = [member.job_id for member in sweep_jobs(engine, sweep_id)]
    return UserError(
        f"{sweep_id} is a sweep of {len(members)} jobs and `{command}` reads one job: "
        f"use `lensbatch compare {sweep_id}` or `lensbatch report {sweep_id}`, or one of "
        f"its jobs: {', '.join(members)}")


def resolve_job(engine: Engine, name: str, command: str) -> str:
    """The whole id of the job `name` names; JobNotFound, or a sweep refused."""
    ref = find(engine, name)
    if ref is None:
        raise JobNotFound(f"no job {name!r}")
    if ref.kind == "sweep":
        raise sweep_refused(engine, ref.id, command)
    return ref.id


def resolve_any(engine: Engine, name: str) -> str:
    """The whole id of the job or sweep `name` names; JobNotFound when none."""
    ref = find(engine, name)
    if ref is None:
        raise JobNotFound(f"no job or sweep {name!r}")
    return ref.id


# Argument callbacks (click runs them after the app's callback has read --db). A JOB
# names a stored job, so its database must exist, whatever the command.

def _engine(ctx: typer.Context) -> Engine:
    from scheduler.database import require_database

    state = invocation(ctx)
    require_database(state.settings.database_url)
    return state.engine


def job_argument(ctx: typer.Context, value: str) -> str:
    return resolve_job(_engine(ctx), value, ctx.info_name or "")


def job_or_sweep_argument(ctx: typer.Context, value: str | None) -> str | None:
    return None if value is None else resolve_any(_engine(ctx), value)


def ids_argument(ctx: typer.Context, value: list[str]) -> list[str]:
    engine = _engine(ctx)
    return [resolve_any(engine, name) for name in value]


def has_heads(engine: Engine, job_id: str) -> bool:
    """Whether the job was run with per-head scores and the probe (not --no-heads)."""
    from lensbatch.jobspec import JobSpec
    from lensbatch.store.report_data import job_record

    return JobSpec.from_json(job_record(engine, job_id)["settings"]).heads
