"""The Celery application shared by the coordinator and the workers.

Defaults that bite long tasks, and what is set instead:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: the message is acknowledged after the job,
  and a worker process that dies mid-job (OOM kill, segfault, ``kill -9``) puts it back in the
  queue instead of losing it.
- ``worker_prefetch_multiplier = 1``: a worker holds one job at a time; a second one reserved
  behind a 2-hour video would wait for nothing while another host idles.
- ``visibility_timeout`` (Redis): a message not acknowledged this long after delivery is given to
  another worker. It must exceed the longest job, or a healthy long job runs twice. The broker
  cannot tell a dead host from a slow job; the coordinator can, from the worker's heartbeat
  record, and reclaims a dead host's job within seconds (anonymizer.daemon.executors).
- JSON only: no pickle from the broker.
"""

from __future__ import annotations

from typing import Any

from anonymizer.settings.scaleout import DEFAULT_VISIBILITY_TIMEOUT_S

TASK_NAME = "anonymizer.run_job"
QUEUE = "anonymizer"


def make_app(broker_url: str, *, result_backend: str | None = None, visibility_timeout_s: float | None = None) -> Any:
    """Return a Celery app for ``broker_url`` (``redis://``, ``rediss://`` or ``amqp://``).

    ``result_backend`` defaults to the broker URL for Redis; an AMQP broker needs a Redis
    result backend (``rpc://`` cannot be read by a coordinator that restarted).
    """
    from celery import Celery

    backend = result_backend or broker_url
    app = Celery("anonymizer", broker=broker_url, backend=backend, set_as_current=False)
    timeout = float(visibility_timeout_s or DEFAULT_VISIBILITY_TIMEOUT_S)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=QUEUE,
        # Results are read by the coordinator, possibly after a restart: kept a week (and deleted
        # once read). Not "extended": the backend need not keep the payload's paths beside them.
        result_expires=7 * 24 * 3600,
        result_extended=False,
        broker_transport_options={"visibility_timeout": timeout},
        result_backend_transport_options={"visibility_timeout": timeout},
        broker_connection_retry_on_startup=True,
        # A worker that loses the broker must not abandon (and redeliver) the job it runs.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        # No task events: they would copy each payload (paths on the shares) to every listener;
        # `anonymizer status` asks the workers directly (remote control), which needs none.
        worker_send_task_events=False,
        task_send_sent_event=False,
        # A job is one long call: no soft time limit here, the profile's limits bound it.
        task_time_limit=None,
    )
    # Imported here: the task module imports this one's TASK_NAME.
    from anonymizer.scaleout.task import register

    register(app)
    return app
