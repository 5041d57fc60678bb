"""Retrying database work with exponential backoff while the database is away.

Every retried unit is one transaction of idempotent statements (upserts), so running it
again after a lost connection is safe. The task's message is acknowledged only after
process_task returns, that is after the write has been committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from lensbatch.errors import DatabaseUnavailable

log = logging.getLogger("lensbatch.worker")

T = TypeVar("T")

# Connection-level failures only: an IntegrityError would fail again, the same way.
TRANSIENT = (OperationalError, InterfaceError, DatabaseUnavailable)


@dataclass(frozen=True)
class Backoff:
    attempts: int = 8
    first_delay: float = 0.5
    max_delay: float = 10.0  # 0.5 + 1 + 2 + 4 + 8 + 10 + 10: about 35 s in all

    def delays(self) -> list[float]:
        return [min(self.first_delay * 2**i, self.max_delay) for i in range(self.attempts - 1)]


def retry_db(action: Callable[[], T], what: str, backoff: Backoff = Backoff()) -> T:
    """Run `action`; on a transient database error wait and run it again."""
    for delay in backoff.delays():
        try:
            return action()
        except TRANSIENT as exc:
            log.warning("database unavailable during %s (%s); retrying in %.1fs",
                        what, type(exc).__name__, delay)
            time.sleep(delay)
    return action()
