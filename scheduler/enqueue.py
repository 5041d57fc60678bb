"""Sending task messages: ids only, one message per task."""

from __future__ import annotations

from collections.abc import Sequence

from kombu import Connection

from lensbatch.errors import BrokerUnavailable
from lensbatch.queue import EVALUATE_TASK, make_celery
from lensbatch.settings import Settings, url_host


def check_broker(settings: Settings, timeout: float = 3.0) -> None:
    """Fail before anything is written when the broker cannot be reached."""
    try:
        with Connection(settings.broker_url, connect_timeout=timeout) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises several transport-specific errors
        raise BrokerUnavailable(
            f"cannot reach broker at {url_host(settings.broker_url)}: {type(exc).__name__}"
        ) from None


def enqueue(settings: Settings, job_id: str, tasks: Sequence[list[int]], queue: str) -> None:
    app = make_celery(settings)
    with app.producer_or_acquire() as producer:
        for seqs in tasks:
            app.send_task(EVALUATE_TASK, args=[job_id, seqs], queue=queue, producer=producer)
