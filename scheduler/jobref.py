"""What a JOB or SWEEP argument names: a whole id, or a unique start of one (at least
MIN_PREFIX characters), resolved to the whole id before the command runs.

Commands that read one job (`results`, `heads`, `tokens`, `export`, `cancel`, `resume`)
refuse a sweep id with one line pointing to the commands that take one and listing the
sweep's jobs; `status` and `report` take either; `compare` takes any mix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import typer
from sqlalchemy import Engine, select

from lensbatch.errors import JobNotFound, UserError
from lensbatch.store import schema
from scheduler.context import invocation

MIN_PREFIX = 4  # a shorter id is taken whole, never as a prefix


@dataclass(frozen=True)
class Ref:
    kind: Literal["job", "sweep"]
    id: str


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def find(engine: Engine, name: str) -> Ref | None:
    """The job or sweep `name` is, or starts, uniquely; None when none; UserError, with
    the number of candidates, when it starts several."""
    j = schema.jobs
    with engine.connect() as connection:
        if connection.scalar(select(j.c.id).where(j.c.id == name)) is not None:
            return Ref("job", name)
        if connection.scalar(select(j.c.sweep_id).where(j.c.sweep_id == name).limit(1)):
            return Ref("sweep", name)
        if len(name) < MIN_PREFIX:
            return None
        pattern = _like(name)  # LIKE narrows it; startswith decides (SQLite's ignores case)
        jobs = connection.scalars(select(j.c.id).where(j.c.id.like(pattern, escape="\\")))
        sweeps = connection.scalars(select(j.c.sweep_id).distinct().where(
            j.c.sweep_id.like(pattern, escape="\\")))
        found = ([Ref("job", x) for x in jobs if x.startswith(name)]
                 + [Ref("sweep", x) for x in sweeps if x.startswith(name)])
    if len(found) > 1:
        raise UserError(f"{name!r} starts {len(found)} job and sweep ids; give more of "
                        "its characters")
    return found[0] if found else None


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
