"""Job and sweep ids from what a user typed: a whole id, or a unique start of one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine, select

from lensbatch.errors import UserError
from lensbatch.store import schema

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
