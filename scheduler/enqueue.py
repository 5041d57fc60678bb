"""Sending task messages: ids only, one message per task.

Every conversation with the broker here has a deadline (BROKER_TIMEOUT seconds per
connect and per read): a broker that accepts connections but never answers (a
`rediss://` URL pointed at a plain Redis waits forever in the TLS handshake) fails in
seconds with one line, as an unreachable one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kombu import Connection
from kombu.utils.url import url_to_parts

from lensbatch.errors import BrokerUnavailable
from lensbatch.queue import EVALUATE_TASK, make_celery
from lensbatch.settings import Settings, url_host

BROKER_TIMEOUT = 3.0


def _timeouts(timeout: float) -> dict[str, Any]:
    """kombu transport options that bound each connect and each read (Redis)."""
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout}


def check_broker_url(settings: Settings) -> None:
    """Refuse a broker URL kombu cannot read (a `#` or `/` left raw in a password), with
    its host and never a piece of the password."""
    try:
        url_to_parts(settings.broker_url)
        readable = "#" not in settings.broker_url  # kombu would read the rest as a fragment
    except ValueError:
        readable = False
    if not readable:
        raise BrokerUnavailable(
            f"cannot read the broker URL for {url_host(settings.broker_url)}: write "
            "reserved characters in its password percent-encoded (# as %23, / as %2F, "
            "? as %3F, @ as %40)")


def check_broker(settings: Settings, timeout: float = BROKER_TIMEOUT) -> None:
    """Fail before anything is written when the broker cannot be reached."""
    check_broker_url(settings)
    try:
        with Connection(settings.broker_url, connect_timeout=timeout,
                        transport_options=_timeouts(timeout)) as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises several transport-specific errors
        raise BrokerUnavailable(
            f"cannot reach broker at {url_host(settings.broker_url)}: {type(exc).__name__}"
        ) from None


def enqueue(settings: Settings, job_id: str, tasks: Sequence[list[int]], queue: str) -> None:
    """One message per task; BrokerUnavailable, naming `lensbatch resume`, when the
    broker is lost half-way (the job is stored: resume queues what has no result)."""
    app = make_celery(settings)
    app.conf.broker_transport_options = {**app.conf.broker_transport_options,
                                         **_timeouts(BROKER_TIMEOUT)}
    try:
        with app.producer_or_acquire() as producer:
            for seqs in tasks:
                app.send_task(EVALUATE_TASK, args=[job_id, seqs], queue=queue,
                              producer=producer)
    except Exception as exc:  # kombu and redis raise several transport-specific errors
        raise BrokerUnavailable(
            f"job {job_id} is stored but its tasks could not be queued at "
            f"{url_host(settings.broker_url)} ({type(exc).__name__}); once the broker is "
            f"back: lensbatch resume {job_id}") from None
