"""The workers table: who is consuming, on what device, doing what, alive when.

Each pool process registers itself as hostname:pid, updates current_task and
documents_done around each task, and refreshes heartbeat_at (worker/heartbeat.py); the
worker's parent process marks it gone, with how it exited, when it exits
(worker/pool.py). A database that is away only delays these updates: they never fail a
task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from lensbatch.status import WORKER_HIDDEN_SECONDS, WORKER_LIVE_SECONDS
from lensbatch.store import schema
from lensbatch.store.clock import age_seconds, now
from lensbatch.store.upsert import upsert

log = logging.getLogger("lensbatch.worker")


@dataclass(frozen=True)
class WorkerInfo:
    name: str  # hostname:pid
    hostname: str
    device: str
    queues: str


def _quietly(engine: Engine, what: str, statement: Any) -> None:
    try:
        with engine.begin() as connection:
            connection.execute(statement)
    except Exception as exc:  # bookkeeping must never take a task down with it
        log.warning("could not update workers table (%s): %s", what, type(exc).__name__)


def register(engine: Engine, info: WorkerInfo) -> bool:
    """Insert or refresh the pool process's row; False when the database is away."""
    stamp = now()
    row = {"name": info.name, "hostname": info.hostname, "device": info.device,
           "queues": info.queues, "current_task": None, "documents_done": 0,
           "online": True, "started_at": stamp, "heartbeat_at": stamp, "exit_status": None}
    try:
        with engine.begin() as connection:
            upsert(connection, schema.workers, [row], keys=("name",))
    except Exception as exc:  # retried by the heartbeat thread
        log.warning("could not register worker (%s)", type(exc).__name__)
        return False
    return True


def _where(name: str) -> Any:
    return update(schema.workers).where(schema.workers.c.name == name)


def set_current_task(engine: Engine, name: str, task: str | None, done: int = 0) -> None:
    statement = _where(name).values(
        current_task=task, heartbeat_at=now(), online=True,
        documents_done=schema.workers.c.documents_done + done,
    )
    _quietly(engine, "current task", statement)


def heartbeat(engine: Engine, name: str) -> None:
    _quietly(engine, "heartbeat", _where(name).values(heartbeat_at=now()))


def set_device(engine: Engine, name: str, device: str) -> None:
    """The device the pool process resolved (`--device auto` registers as auto)."""
    _quietly(engine, "device", _where(name).values(device=device))


def go_offline(engine: Engine, name: str) -> None:
    _quietly(engine, "offline", _where(name).values(online=False, current_task=None))


def mark_gone(engine: Engine, name: str, exit_status: str) -> None:
    """The pool process has exited (its parent saw it): offline, with how it exited.
    current_task stays: it names what the process was doing when it died."""
    _quietly(engine, "gone", _where(name).values(online=False, exit_status=exit_status))


def active_workers(engine: Engine) -> int:
    """Workers online whose heartbeat is fresh (lensbatch.status.WORKER_LIVE_SECONDS)."""
    w = schema.workers
    with engine.connect() as connection:
        stamps = connection.scalars(select(w.c.heartbeat_at).where(w.c.online.is_(True)))
        return sum(age_seconds(stamp) <= WORKER_LIVE_SECONDS for stamp in stamps)


def _online(online: bool, age: float, exit_status: str | None) -> str:
    if not online:
        return f"no ({exit_status})" if exit_status else "no"
    return "lost" if age > WORKER_LIVE_SECONDS else "yes"


def worker_rows(engine: Engine, everything: bool = False) -> list[dict[str, Any]]:
    """`lensbatch workers`: one row per registered pool process, lost and gone ones
    marked; those silent for WORKER_HIDDEN_SECONDS are left out unless `everything`."""
    w = schema.workers
    with engine.connect() as connection:
        rows = connection.execute(select(w).order_by(w.c.hostname, w.c.name)).all()
    out = []
    for r in rows:
        age = age_seconds(r.heartbeat_at)
        if age > WORKER_HIDDEN_SECONDS and not everything:
            continue
        state = _online(r.online, age, r.exit_status)
        out.append({"worker": r.name, "hostname": r.hostname, "device": r.device,
                    "queues": r.queues, "current task": r.current_task or "-",
                    "documents done": r.documents_done, "online": state,
                    "last heartbeat": f"{age:.0f}s ago"})
    return out

