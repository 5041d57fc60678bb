"""The Celery application, shared by the scheduler (which only sends) and the workers.

No task code lives here, so the scheduler never imports torch. Task names are constants
that both sides use.
"""

from __future__ import annotations

from celery import Celery

from lensbatch.settings import Settings

EVALUATE_TASK = "lensbatch.evaluate"


def make_celery(settings: Settings) -> Celery:
    app = Celery("lensbatch", broker=settings.broker_url)
    app.conf.update(
        # JSON only: a pickled message is refused before any code runs.
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        # Results live in the SQL database, not in a Celery backend.
        task_ignore_result=True,
        # Acknowledge after the results are committed, one message at a time, and
        # send a task back to the queue when its worker process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="cpu",
        # A delivered message that is not acknowledged within visibility_timeout is put
        # back on its queue by whichever worker's consumer next sweeps the unacked index
        # (kombu's QoS.restore_visible). kombu sweeps every unacked_restore_interval
        # seconds but scans Redis only on every unacked_restore_throttle-th sweep;
        # throttle 1 makes restore_interval the real period. A killed worker's task thus
        # comes back after visibility_timeout + up to restore_interval seconds.
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": settings.restore_interval,
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
