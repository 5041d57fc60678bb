"""Which queues live workers consume, read from the workers table."""

from __future__ import annotations

from sqlalchemy import Engine, select

from lensbatch.status import WORKER_LIVE_SECONDS
from lensbatch.store import schema
from lensbatch.store.clock import age_seconds


def live_queues(engine: Engine) -> set[str]:
    """The queues of the workers online whose heartbeat is fresh
    (lensbatch.status.WORKER_LIVE_SECONDS)."""
    w = schema.workers
    with engine.connect() as connection:
        rows = connection.execute(select(w.c.queues, w.c.heartbeat_at)
                                  .where(w.c.online.is_(True))).all()
    return {queue.strip() for queues, stamp in rows if age_seconds(stamp) <= WORKER_LIVE_SECONDS
            for queue in queues.split(",") if queue.strip()}
