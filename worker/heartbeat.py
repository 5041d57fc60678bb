"""A pool process's row in the workers table: registered and kept fresh by a daemon
thread, so that the pool process's start (worker_process_init, which Celery gives 4 s
for a replacement) does no database work and imports nothing heavy."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from lensbatch.status import HEARTBEAT_SECONDS
from lensbatch.store.workers import WorkerInfo, heartbeat, register

log = logging.getLogger("lensbatch.worker")


def worker_name(pid: int) -> str:
    """A pool process's name in the workers table (and in results.worker)."""
    return f"{socket.gethostname()}:{pid}"


def this_worker(device: str, queues: str) -> WorkerInfo:
    return WorkerInfo(worker_name(os.getpid()), socket.gethostname(), device, queues)


def _register(connect: Callable[[], Engine], info: WorkerInfo) -> Engine | None:
    try:
        engine = connect()
    except Exception as exc:  # the database may be away: the next beat tries again
        log.warning("worker registration failed: %s", type(exc).__name__)
        return None
    return engine if register(engine, info) else None


def start_heartbeat(connect: Callable[[], Engine], info: WorkerInfo,
                    interval: float = HEARTBEAT_SECONDS) -> tuple[threading.Event,
                                                                  threading.Event]:
    """In a daemon thread: register (connecting with `connect`), then refresh
    heartbeat_at every `interval` s, registering again until that succeeds. Returns
    (registered: set once the first registration was tried, stop: set it to stop)."""
    registered, stop = threading.Event(), threading.Event()

    def beat() -> None:
        engine = _register(connect, info)
        registered.set()
        while not stop.wait(interval):
            if engine is None:
                engine = _register(connect, info)
            else:
                heartbeat(engine, info.name)

    threading.Thread(target=beat, name="lensbatch-heartbeat", daemon=True).start()
    return registered, stop
