"""The coordinator's half of scale-out: jobs go to ``anonymizer worker`` processes via Celery.

The daemon still claims, hashes, dedups, verifies, publishes, audits and retires (``Worker``);
only the engine call runs remotely. The order per job::

    claim ─▶ Worker.prepare (stat, SHA-256, job key, reuse)   ─▶ journal meta: job → task id
      ─▶ send the task (payload: paths, profile by content, model SHA-256s, delivery limit)
      ... worker: run_job into <output>/.anonymizer-tmp-<job>.d/d<delivery>/ ...
      ─▶ result ─▶ Worker.complete (the SHA-256 the worker verified, publish, journal, audit)
      ─▶ work folder removed

Why each guarantee holds:

- exactly one output: a job is published once, by this process, from the journal; a second result
  for the same job (a redelivery that also finished) is never read, and its files go with the job's
  work folder. Two jobs of the same content (job key) finishing together: the second reuses the
  first one's output and its own is discarded (``Worker.complete``).
- worker death: the task is redelivered (late ack, reject on worker lost); the new delivery clears
  the work folder of the dead one. After ``retry.max_attempts`` deliveries the task refuses to
  run and the source is quarantined with that reason (a poison file).
- coordinator restart: the job→task map lives in the journal, so jobs still out are re-attached
  to their tasks (not requeued, not sent again); their work folders are left alone.
- dead worker host: a job whose task is held by a worker whose status record went stale (no
  heartbeat for ``STALE_BEATS`` beats) is reclaimed: sent again under a new task id, journaled
  first, and the old message is taken out of the broker's unacknowledged set. A late result of
  the "dead" worker arrives under the old id, which nobody reads (fenced); its files go with the
  work folder. Deliveries are counted per job, so host deaths count toward the poison limit.
- no names in the broker: the worker reads the source through an id-named link in the input
  folder (``<input>/.anonymizer-stage/<job id><suffix>``) and writes under an id-named work
  folder in the output folder's root; sidecar masks travel with neutral labels.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonymizer.daemon.config import BrokerConfig, FolderConfig
from anonymizer.daemon.journal import Journal
from anonymizer.daemon.worker import Attempt, Worker
from anonymizer.durable import (
    STAGE_DIR,
    job_of_staged_name,
    job_of_work_dir,
    stage_source,
    staged_source_for,
    work_dir_for,
)
from anonymizer.errors import JobError, MediaError, ModelError
from anonymizer.jobs.run import JobOutput

RECLAIM_CHECK_S = 2.0  # how often the workers' status records are read for a dead holder
META_KEY = "dist.in_flight"  # journal meta: JSON {job id: task id} of the jobs out on workers
ERRORS: dict[str, type[BaseException]] = {
    "MediaError": MediaError,
    "FileNotFoundError": FileNotFoundError,
    "OSError": OSError,
    "ModelError": ModelError,
    "JobError": JobError,
}


@dataclass
class InFlight:
    attempt: Attempt
    task_id: str
    work_dir: Path
    sent_at: float
    reclaims: int = 0


class RemoteRunner:
    """Sends prepared jobs to the queue and completes them when their results arrive."""

    def __init__(self, worker: Worker, journal: Journal, broker: BrokerConfig, log: Any, *, queue: Any = None) -> None:
        from anonymizer.scaleout.app import make_app
        from anonymizer.scaleout.client import JobQueue

        self.worker = worker
        self.journal = journal
        self.broker = broker
        self.log = log
        if queue is None:
            app = make_app(broker.url, result_backend=broker.result_backend, visibility_timeout_s=broker.visibility_timeout_s)
            queue = JobQueue(app)
        self.queue = queue
        self.in_flight: dict[str, InFlight] = {}
        self._workers: tuple[float, dict[str, dict[str, Any]]] = (float("-inf"), {})

    # ------------------------------------------------------------------ journaled map

    def _saved(self) -> dict[str, str]:
        raw = self.journal.get_meta(META_KEY)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {}
        return data if isinstance(data, dict) else {}

    def _save(self) -> None:
        self.journal.set_meta(META_KEY, json.dumps({j: f.task_id for j, f in self.in_flight.items()}, sort_keys=True))

    def still_out(self) -> set[str]:
        """At start-up, before the journal recovers interrupted jobs: the ids of jobs out on workers."""
        running = {j.id for j in self.journal.running()}
        return {job_id for job_id in self._saved() if job_id in running}

    def reattach(self, folders: dict[str, FolderConfig]) -> int:
        """After a restart: follow the tasks of jobs still out again (prepare is re-run: it only
        checks and hashes; nothing is sent again). Remove work folders of jobs no longer out."""
        saved = self._saved()
        for job_id in self.still_out():
            job = self.journal.get(job_id)
            folder = folders.get(job.folder) if job is not None else None
            if job is None:
                continue
            if folder is None:
                # Its folder left the config: queued again, as an interrupted job of it would be.
                self.journal.requeue(job_id)
                continue
            attempt = self.worker.begin(job, folder)
            if isinstance(attempt, str) or self.worker.prepare(attempt) is not None:
                continue  # ended without the engine (changed, vanished): its work folder goes below
            task_id = saved[job_id]
            self.in_flight[job_id] = InFlight(attempt, task_id, _work_dir(attempt), time.monotonic())
            try:
                if self.queue.state(task_id).state == "PENDING":
                    # Never marked queued: the coordinator stopped between journaling and sending.
                    self._send(attempt, task_id)
            except self.unavailable_errors() as exc:
                # The broker is away at start-up: ``collect`` looks again once it is back.
                attempt.log.error("dist.broker_unavailable", error=type(exc).__name__)
            attempt.log.info("job.reattached", task_id=task_id)
        self._save()
        self._remove_stale_work_dirs(folders)
        return len(self.in_flight)

    def _remove_stale_work_dirs(self, folders: dict[str, FolderConfig]) -> None:
        removed = 0
        for folder in folders.values():
            for dirpath, dirnames, _ in os.walk(folder.output):
                for name in list(dirnames):
                    job_id = job_of_work_dir(name)
                    if job_id is not None and job_id not in self.in_flight:
                        shutil.rmtree(os.path.join(dirpath, name), ignore_errors=True)
                        removed += 1
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            stage = folder.input / STAGE_DIR
            for entry in os.scandir(stage) if stage.is_dir() else ():
                if job_of_staged_name(entry.name) not in self.in_flight:
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        if removed:
            self.log.warning("output.work_dirs_removed", count=removed)

    # ------------------------------------------------------------------ the loop

    def has_room(self) -> bool:
        return len(self.in_flight) < self.broker.in_flight

    def dispatch(self, job: Any, folder: FolderConfig) -> str | None:
        """Prepare a claimed job and send it; return its outcome if it ended before the engine."""
        attempt = self.worker.begin(job, folder)
        if isinstance(attempt, str):
            return attempt
        outcome = self.worker.prepare(attempt)
        if outcome is not None:
            return outcome
        try:
            how = stage_source(attempt.src, _staged(attempt))
        except OSError as exc:
            # The input share refuses the id-named link (read-only, full): an I/O error of this
            # job, retried and then quarantined with its reason, never a broker outage.
            return self.worker.complete(attempt, exc)
        if how != "link":
            attempt.log.info("job.staged", how=how)  # a share without hard links: still no name sent
        task_id = f"{attempt.job.id}-{uuid.uuid4().hex[:8]}"
        # Journaled before it is sent, so that a restart follows this task instead of sending
        # the job again (see ``reattach``).
        self.in_flight[attempt.job.id] = InFlight(attempt, task_id, _work_dir(attempt), time.monotonic())
        self._save()
        self._send(attempt, task_id)
        attempt.log.info("job.dispatched", task_id=task_id)
        return None

    def _send(self, a: Attempt, task_id: str) -> None:
        from anonymizer.scaleout.payload import JobPayload, model_identities, profile_to_content

        profile, profile_sha = profile_to_content(a.folder.profile)
        staged = _staged(a)
        stage_source(a.src, staged)  # kept as is when staged already (dispatch); again after a restart
        payload = JobPayload(
            job_id=a.job.id,
            task_id=task_id,
            source=str(staged),
            work_dir=str(_work_dir(a)),
            suffix=a.src.suffix,
            profile=profile,
            profile_sha256=profile_sha,
            models=model_identities(a.engine.models),
            max_deliveries=self.worker.retry.max_attempts,
            # Neutral labels: a sidecar's label may be its file name, which carries the source's.
            masks=[[f"sidecar {i + 1}", text] for i, (_, text) in enumerate(a.masks.documents)] if a.masks else [],
            masks_sha256=list(a.masks.sha256) if a.masks else [],
        )
        # The work folder exists exactly while the job is out: a delivery that finds none is a
        # late duplicate and runs nothing (anonymizer.scaleout.task).
        _work_dir(a).mkdir(exist_ok=True)
        self.queue.submit(payload)

    def collect(self, folders: dict[str, FolderConfig]) -> list[str]:
        """Complete every job whose result has arrived; return their outcomes."""
        outcomes = []
        for job_id, flight in list(self.in_flight.items()):
            state = self.queue.state(flight.task_id)
            if state.state == "PENDING":
                # It was marked QUEUED before it was sent: the broker lost it (restarted without
                # persistence, or the result expired). Sent again under the same id.
                flight.attempt.log.warning("dist.task_lost", task_id=flight.task_id)
                self._send(flight.attempt, flight.task_id)
                continue
            if not state.ready:
                self._reclaim_if_held_by_dead_worker(flight, state)
                continue
            try:
                outcomes.append(self._complete(flight, state))
            finally:
                self.in_flight.pop(job_id, None)
                self._save()
                shutil.rmtree(flight.work_dir, ignore_errors=True)
                with contextlib.suppress(OSError):  # a stale one goes at the next start
                    _staged(flight.attempt).unlink(missing_ok=True)
                self.queue.forget(flight.task_id, job_id=job_id)
        return outcomes

    # ------------------------------------------------------------------ dead hosts

    def _worker_records(self) -> dict[str, dict[str, Any]]:
        """Every worker's status record by node name, read at most every RECLAIM_CHECK_S."""
        at, records = self._workers
        if time.monotonic() - at >= RECLAIM_CHECK_S:
            records = {str(w["name"]): w for w in self.queue.workers()}
            self._workers = (time.monotonic(), records)
        return records

    def _reclaim_if_held_by_dead_worker(self, flight: InFlight, state: Any) -> None:
        """Send a job again if the worker that took it stopped beating (its host died, or lost
        the broker): the broker itself would wait for the visibility timeout (hours)."""
        info = state.info if isinstance(state.info, dict) else {}
        holder = info.get("node") or info.get("hostname")  # PROGRESS meta / Celery's STARTED meta
        if state.state not in ("STARTED", "PROGRESS") or not holder or not self.queue.reclaims_dead_hosts:
            return
        record = self._worker_records().get(str(holder))
        if record is None or not record.get("stale"):
            return
        old = flight.task_id
        flight.task_id = f"{flight.attempt.job.id}-{uuid.uuid4().hex[:8]}"
        flight.reclaims += 1
        self._workers = (float("-inf"), {})
        # Journaled before it is sent, as in ``dispatch``: a restart follows the new task only.
        self._save()
        self._send(flight.attempt, flight.task_id)
        self.queue.discard(old)
        flight.attempt.log.warning(
            "job.reclaimed",
            task_id=flight.task_id,
            previous_task_id=old,
            dead_worker=str(holder),
            heartbeat_age_s=record.get("heartbeat_age_s"),
        )

    def _complete(self, flight: InFlight, state: Any) -> str:
        a = flight.attempt
        result = state.result or {}
        status = result.get("status") if state.state == "SUCCESS" else "failure"
        worker_name = result.get("worker")
        a.log = a.log.bind(task_id=flight.task_id, worker=worker_name, deliveries=result.get("deliveries"))
        if status == "ok":
            if not result.get("sha256") or not isinstance(result.get("size"), int):
                return self.worker.complete(a, JobError("the worker's result names no verified SHA-256 (another version)"))
            output = JobOutput(
                Path(result["path"]),
                str(result.get("extra_suffix") or ""),
                dict(result["summary"]),
                float(result["engine_s"]),
                str(result["sha256"]),
                int(result["size"]),
            )
            if not _inside(output.path, flight.work_dir):
                return self.worker.complete(a, JobError("the worker returned an output outside the job's work folder"))
            return self.worker.complete(a, output)
        if status == "poison":
            n = int(result.get("deliveries") or 0)
            reason = f"the worker process died {n} times while processing it (delivery limit {self.worker.retry.max_attempts})"
            return self.worker.give_up(a, reason, "DeliveryLimit")
        if status == "stale":
            return self.worker.complete(a, JobError("the job's work folder vanished while it was out"))
        if status == "mismatch":
            return self.worker.defer(a, str(result.get("reason") or "worker refused the job"))
        if status == "error":
            kind = ERRORS.get(str(result.get("type")), JobError)
            reason = str(result.get("reason") or kind.__name__)
            exc = kind(reason) if not issubclass(kind, OSError) else kind(0, reason)
            if isinstance(exc, OSError):
                exc.strerror = reason
            return self.worker.complete(a, exc)
        return self.worker.complete(a, JobError(f"the task failed on the worker ({state.info or state.state})"))

    @staticmethod
    def unavailable_errors() -> tuple[type[BaseException], ...]:
        """What Celery, kombu and redis-py raise while the broker or backend cannot be reached."""
        from kombu.exceptions import OperationalError
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        return (OSError, OperationalError, RedisConnectionError, RedisTimeoutError)

    def release(self) -> None:
        """On stop: leave jobs out on workers as they are (the journal keeps them running)."""
        self.in_flight.clear()


def _work_dir(a: Attempt) -> Path:
    return work_dir_for(a.folder.output, a.job.id)


def _staged(a: Attempt) -> Path:
    return staged_source_for(a.folder.input, a.job.id, a.src.suffix)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False
