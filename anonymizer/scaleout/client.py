"""The coordinator's side of the queue: submit a job, read where it stands, count the backlog.

Task ids are chosen by the coordinator and journaled before the job is sent, so a coordinator
that restarts finds its jobs' results in the backend under the same ids instead of sending them
again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from anonymizer.scaleout.app import QUEUE, TASK_NAME, make_app
from anonymizer.scaleout.heartbeat import read_workers
from anonymizer.scaleout.payload import JobPayload
from anonymizer.scaleout.task import DELIVERY_KEY
from anonymizer.settings.scaleout import redacted


@dataclass(frozen=True)
class RemoteState:
    """Where a task stands: ``state`` is Celery's (PENDING, STARTED, PROGRESS, SUCCESS, FAILURE...);
    ``result`` is the task's dict once SUCCESS, ``info`` the progress dict or the failure text."""

    state: str
    result: dict[str, Any] | None = None
    info: Any = None

    @property
    def ready(self) -> bool:
        return self.state in ("SUCCESS", "FAILURE", "REVOKED")


class JobQueue:
    """Send jobs to workers and read their results through one Celery app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def submit(self, payload: JobPayload) -> None:
        """Send a job. Its state is set to QUEUED first: a task still PENDING after a coordinator
        restart was never sent (a worker's STARTED can only come after this write)."""
        self.app.backend.store_result(payload.task_id, None, "QUEUED")
        self.app.send_task(TASK_NAME, args=[payload.to_dict()], task_id=payload.task_id, queue=QUEUE)

    def state(self, task_id: str) -> RemoteState:
        res = self.app.AsyncResult(task_id)
        state = res.state
        if state == "SUCCESS":
            value = res.result
            return RemoteState(state, value if isinstance(value, dict) else None)
        if state == "FAILURE":
            return RemoteState(state, None, type(res.result).__name__)
        return RemoteState(state, None, res.info if isinstance(res.info, dict) else None)

    def forget(self, task_id: str, *, job_id: str) -> None:
        """Drop a consumed result and the job's delivery counter from the backend."""

        self.app.AsyncResult(task_id).forget()
        client = getattr(self.app.backend, "client", None)
        if client is not None:
            client.delete(DELIVERY_KEY + job_id)

    @property
    def reclaims_dead_hosts(self) -> bool:
        """Whether the coordinator reclaims a dead host's job: with a Redis broker only. RabbitMQ
        requeues a dead consumer's message itself (a reclaim beside it would run the job twice)."""
        return str(self.app.conf.broker_url).startswith(("redis://", "rediss://"))

    def discard(self, task_id: str) -> int:
        """Take a task its (dead) worker held out of the broker: remove its message from the
        Redis transport's unacknowledged set, which would otherwise deliver it again after the
        visibility timeout, and forget its result. Return how many messages were removed.

        A late result of that worker still lands under ``task_id`` (kept ``result_expires``);
        the coordinator follows the job's new task id only. With RabbitMQ nothing is stored here:
        the broker requeues a dead consumer's message itself when its connection drops.
        """
        self.app.AsyncResult(task_id).forget()
        if not self.reclaims_dead_hosts:
            return 0
        options = self.app.conf.broker_transport_options or {}
        unacked = options.get("unacked_key", "unacked")
        index = options.get("unacked_index_key", "unacked_index")
        removed = 0
        with self.app.connection_for_write() as conn:
            client = conn.default_channel.client
            for tag, raw in client.hscan_iter(unacked, count=200):
                try:
                    message = json.loads(raw)[0]
                    held = message.get("headers", {}).get("id")
                except (ValueError, IndexError, AttributeError, TypeError):
                    continue
                if held == task_id:
                    client.hdel(unacked, tag)
                    client.zrem(index, tag)
                    removed += 1
        return removed

    def depth(self) -> int | None:
        """Messages waiting in the queue (not yet taken by a worker), or None if unknown."""
        from amqp.exceptions import ChannelError

        try:
            with self.app.connection_for_read() as conn:
                return int(conn.default_channel.queue_declare(queue=QUEUE, passive=True).message_count)
        except ChannelError as exc:
            if str(getattr(exc, "reply_code", "")) == "404":  # kombu's Redis channel sets the text "404"
                return 0  # Redis keeps no empty lists: no queue means no message waiting
            return None
        except Exception:  # noqa: BLE001 - advisory figure; a broker hiccup must not stop the loop
            return None

    def workers(self) -> list[dict[str, Any]]:
        """Every worker's status record (anonymizer.scaleout.heartbeat): live, stopped or stale."""

        client = getattr(self.app.backend, "client", None)
        return read_workers(client) if client is not None else []


def broker_status(url: str, result_backend: str | None = None) -> dict[str, Any]:
    """For ``anonymizer status``: jobs waiting in the broker and every worker's status record.

    Never raises: a broker that cannot be reached is reported as such (the URL without password).
    """

    out: dict[str, Any] = {"broker": redacted(url)}
    try:
        queue = JobQueue(make_app(url, result_backend=result_backend))
        out["waiting"] = queue.depth()
        out["workers"] = queue.workers()
    except Exception as exc:  # noqa: BLE001 - advisory output; the reason is the exception's type
        out["error"] = type(exc).__name__
    return out
