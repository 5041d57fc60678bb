"""A pool process's heartbeat: a daemon thread that keeps its workers row fresh."""

from __future__ import annotations

import os
import socket
import threading

from sqlalchemy import Engine

from lensbatch.status import HEARTBEAT_SECONDS
from lensbatch.store.workers import WorkerInfo, heartbeat, register


def this_worker(device: str, queues: str) -> WorkerInfo:
    hostname = socket.gethostname()
    return WorkerInfo(f"{hostname}:{os.getpid()}", hostname, device, queues)


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
