"""The workers table: who is consuming, on what device, doing what, alive when.

Each pool process registers itself as hostname:pid, updates current_task and
documents_done around each task, and a daemon thread refreshes heartbeat_at. A
database that is away only delays these updates: they are never allowed to fail a task.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, update

from lensbatch import schema
from lensbatch.upsert import upsert

log = logging.getLogger("lensbatch.worker")

HEARTBEAT_SECONDS = 5.0


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    hostname: str
    device: str
    queues: str


def this_worker(device: str, queues: str) -> WorkerInfo:
    hostname = socket.gethostname()
    return WorkerInfo(f"{hostname}:{os.getpid()}", hostname, device, queues)


def _quietly(engine: Engine, what: str, statement: Any) -> None:
    try:
        with engine.begin() as connection:
            connection.execute(statement)
    except Exception as exc:  # bookkeeping must never take a task down with it
        log.warning("could not update workers table (%s): %s", what, type(exc).__name__)


def register(engine: Engine, info: WorkerInfo) -> None:
    stamp = datetime.now(UTC)
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
        current_task=task, heartbeat_at=datetime.now(UTC), online=True,
        documents_done=schema.workers.c.documents_done + done,
    )
    _quietly(engine, "current task", statement)


def heartbeat(engine: Engine, name: str) -> None:
    _quietly(engine, "heartbeat", _where(name).values(heartbeat_at=datetime.now(UTC)))


def go_offline(engine: Engine, name: str) -> None:
    _quietly(engine, "offline", _where(name).values(online=False, current_task=None))


def start_heartbeat(engine: Engine, info: WorkerInfo,
                    interval: float = HEARTBEAT_SECONDS) -> threading.Event:
    """Register now and refresh heartbeat_at every `interval` s; set the event to stop."""
    stop = threading.Event()
    register(engine, info)

    def beat() -> None:
        while not stop.wait(interval):
            heartbeat(engine, info.name)

    threading.Thread(target=beat, name="lensbatch-heartbeat", daemon=True).start()
    return stop
