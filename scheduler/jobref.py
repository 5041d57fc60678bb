"""What a JOB or SWEEP argument names: a whole id, or a unique start of one (at least
MIN_PREFIX characters), resolved to the whole id before the command runs.

Commands that read one job (`results`, `heads`, `tokens`, `export`, `cancel`, `resume`)
refuse a sweep id with one line pointing to the commands that take one and listing the
sweep's jobs; `status` and `report` take either; `compare` takes any mix; `ablations`
refuses a job id with one line, giving the command for the job's ablation sweep.
"""

from __future__ import annotations

import typer
from sqlalchemy import Engine

from lensbatch.errors import JobNotFound, UserError
from lensbatch.store.jobids import find
from scheduler.context import invocation


def sweep_refused(engine: Engine, sweep_id: str, command: str,
                  program: str = "lensbatch") -> UserError:
    """`command` given a sweep; `program` is how the commands named start (the program
    and its --db, scheduler/nextsteps.py `prefix`)."""
    from lensbatch.store.sweeps import sweep_jobs

    members = [member.job_id for member in sweep_jobs(engine, sweep_id)]
    return UserError(
        f"{sweep_id} is a sweep of {len(members)} jobs and `{command}` reads one job: "
        f"use `{program} compare {sweep_id}` or `{program} report {sweep_id}`, or one of "
        f"its jobs: {', '.join(members)}")


def resolve_job(engine: Engine, name: str, command: str, program: str = "lensbatch") -> str:
    """The whole id of the job `name` names; JobNotFound, or a sweep refused."""
    ref = find(engine, name)
    if ref is None:
        raise JobNotFound(f"no job {name!r}")
    if ref.kind == "sweep":
        raise sweep_refused(engine, ref.id, command, program)
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
    from scheduler.nextsteps import prefix

    return resolve_job(_engine(ctx), value, ctx.info_name or "",
                       prefix(invocation(ctx).db_option))


def job_or_sweep_argument(ctx: typer.Context, value: str | None) -> str | None:
    return None if value is None else resolve_any(_engine(ctx), value)


def ablation_sweep_argument(ctx: typer.Context, value: str) -> str:
    """`ablations SWEEP`: the whole sweep id; a job id is refused with one line that,
    for a job of an ablation sweep, gives the command with its sweep's id."""
    from scheduler.nextsteps import prefix

    engine = _engine(ctx)
    ref = find(engine, value)
    if ref is None:
        raise JobNotFound(f"no sweep {value!r} (the id that run or submit "
                          "--ablate-each-head printed)")
    if ref.kind == "job":
        raise job_refused(engine, ref.id, prefix(invocation(ctx).db_option))
    return ref.id


def job_refused(engine: Engine, job_id: str, command: str) -> UserError:
    """`ablations JOB`: what to run instead (`command` is the program and its --db)."""
    from lensbatch.store.report_data import job_record
    from scheduler.ablation_view import is_ablation_sweep

    sweep_id = job_record(engine, job_id)["sweep_id"]
    if sweep_id is not None and is_ablation_sweep(engine, sweep_id):
        return UserError(f"{job_id} is a job of the ablation sweep {sweep_id}, and "
                         f"`ablations` reads the sweep: {command} ablations {sweep_id}")
    return UserError(f"{job_id} is a job, not an ablation sweep: `ablations` reads the "
                     "sweep id that run or submit --ablate-each-head printed")


def ids_argument(ctx: typer.Context, value: list[str]) -> list[str]:
    engine = _engine(ctx)
    return [resolve_any(engine, name) for name in value]


def has_heads(engine: Engine, job_id: str) -> bool:
    """Whether the job was run with per-head scores and the probe (not --no-heads)."""
    from lensbatch.jobspec import JobSpec
    from lensbatch.store.report_data import job_record

    return JobSpec.from_json(job_record(engine, job_id)["settings"]).heads
