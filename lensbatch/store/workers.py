"""The workers table: who is consuming, on what device, doing what, alive when.

Each pool process registers itself as hostname:pid, updates current_task and
documents_done around each task, and refreshes heartbeat_at (worker/heartbeat.py). A
database that is away only delays these updates: they never fail a task.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from lensbatch.status import WORKER_LIVE_SECONDS
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


def register(engine: Engine, info: WorkerInfo) -> None:
    stamp = now()
    row = {"name": info.name, "hostname": info.hostname, "device": info.device,
           "queues": info.queues, "current_task": None, "documents_done": 0,
           "online": True, "started_at": stamp, "heartbeat_at": stamp}
    try:
        with engine.begin() as connection:
            upsert(connection, schema.workers, [row], keys=("name",))
    except Exception as exc:  # retried by the heartbeat thread
        log.warning("could not register worker (%s)", type(exc).__name__)


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


def go_offline(engine: Engine, name: str) -> None:
    _quietly(engine, "offline", _where(name).values(online=False, current_task=None))


def active_workers(engine: Engine) -> int:
    """Workers online whose heartbeat is fresh (lensbatch.status.WORKER_LIVE_SECONDS)."""
    w = schema.workers
    with engine.connect() as connection:
        stamps = connection.scalars(select(w.c.heartbeat_at).where(w.c.online.is_(True)))
        return sum(age_seconds(stamp) <= WORKER_LIVE_SECONDS for stamp in stamps)


def worker_rows(engine: Engine) -> list[dict[str, Any]]:
    """`lensbatch workers`: one row per registered pool process, lost ones marked."""
    w = schema.workers
    with engine.connect() as connection:
        rows = connection.execute(select(w).order_by(w.c.hostname, w.c.name)).all()
    out = []
    for r in rows:
        age = age_seconds(r.heartbeat_at)
        state = "no" if not r.online else ("lost" if age > WORKER_LIVE_SECONDS else "yes")
        out.append({"worker": r.name, "hostname": r.hostname, "device": r.device,
                    "queues": r.queues, "current task": r.current_task or "-",
                    "documents done": r.documents_done, "online": state,
                    "last heartbeat": f"{age:.0f}s ago"})
    return out

