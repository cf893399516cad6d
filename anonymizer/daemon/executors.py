"""Where a claimed job's engine call runs: one interface, two executors.

The service's loop is the same whatever runs the engine::

    claim (journal) ─▶ executor.submit(job, folder) ─▶ ... ─▶ executor.poll() ─▶ outcomes

``InProcess`` runs the job here, through its lifecycle (``Lifecycle.run``), one at a time, as the
single-host daemon does. ``Celery`` prepares the job here (``Lifecycle.begin``/``prepare``: stat,
SHA-256, dedup), sends the engine call to ``anonymizer worker`` processes through the broker, and
completes the job here when its result arrives (``Lifecycle.complete``: verify, publish, audit);
``anonymizer.daemon.remote`` holds its wire side and the guarantees (exactly one output, a dead
host's job reclaimed, no names in the broker).

Either way the lifecycle records every outcome in the journal; ``poll()`` only reports them, so
the loop can tick the heartbeat, refresh the status line and retire what became due.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from anonymizer.daemon.job import Attempt, Lifecycle
from anonymizer.daemon.remote import (
    InFlight,
    build_payload,
    finish,
    load_task_map,
    remove_stale_work_dirs,
    save_task_map,
    staged_of,
    unavailable_errors,
    work_dir_of,
)
from anonymizer.durable import stage_source
from anonymizer.settings.daemon import BrokerConfig, FolderConfig
from anonymizer.store import Job, Journal

RECLAIM_CHECK_S = 2.0  # how often the workers' status records are read for a dead holder


class Executor(Protocol):
    """What the service's loop needs from whatever runs the engine call."""

    # How long the loop waits for a new file (or a result) when it claimed nothing this turn.
    wait_s: float

    def capacity(self) -> int:
        """How many more claimed jobs ``submit`` takes now (0: poll first)."""
        ...

    def submit(self, job: Job, folder: FolderConfig) -> None:
        """Start a claimed job; its outcome comes from a later ``poll``. May raise StopRequested
        (after requeueing the job) or one of ``unavailable_errors()``."""
        ...

    def poll(self, folders: dict[str, FolderConfig]) -> list[str]:
        """The outcomes of the jobs that ended since the last poll (already journaled)."""
        ...

    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        """Errors that mean "the executor is away for now": the loop logs them and waits."""
        ...

    def still_out(self) -> set[str]:
        """At start-up, before interrupted jobs are requeued: ids of jobs still running elsewhere."""
        ...

    def reattach(self, folders: dict[str, FolderConfig]) -> int:
        """At start-up, after recovery: follow the jobs still out again; return how many."""
        ...

    def stop(self) -> None:
        """The loop ended: let go of what is running (the journal keeps every job's state)."""
        ...


class InProcess:
    """Runs each job to its outcome in this process, one at a time (the single-host daemon).

    ``submit`` returns only when the job ended; its outcome waits for the next ``poll``, and the
    one slot stays taken until then, so the loop turns (reload, audit retry, retention, stop)
    between two jobs.
    """

    wait_s = 1.0

    def __init__(
        self,
        lifecycle: Lifecycle,
        *,
        started: Callable[[Job], None] = lambda job: None,
        ended: Callable[[], None] = lambda: None,
    ) -> None:
        self.lifecycle = lifecycle
        self._started = started  # the status line and the heartbeat name the running job
        self._ended = ended
        self._finished: list[str] = []

    def capacity(self) -> int:
        return 0 if self._finished else 1

    def submit(self, job: Job, folder: FolderConfig) -> None:
        self._started(job)
        try:
            outcome = self.lifecycle.run(job, folder)
        finally:
            self._ended()
        self._finished.append(outcome)

    def poll(self, folders: dict[str, FolderConfig]) -> list[str]:
        finished, self._finished = self._finished, []
        return finished

    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        return ()  # nothing remote to wait for: an error escaping a job is a bug

    def still_out(self) -> set[str]:
        return set()  # a job of this process cannot outlive it

    def reattach(self, folders: dict[str, FolderConfig]) -> int:
        return 0

    def stop(self) -> None:
        """Nothing to let go: a running job was abandoned (and requeued) at its last progress call."""


class Celery:
    """Sends prepared jobs to ``anonymizer worker`` processes and completes them as results arrive."""

    wait_s = 0.2  # results are polled: a short wait (a new file still wakes the loop at once)

    def __init__(self, lifecycle: Lifecycle, journal: Journal, broker: BrokerConfig, log: Any, *, queue: Any = None) -> None:
        self.lifecycle = lifecycle
        self.journal = journal
        self.broker = broker
        self.log = log
        if queue is None:
            # Imported here: celery is the scale-out extra, loaded only by a daemon with a broker.
            from anonymizer.scaleout.app import make_app
            from anonymizer.scaleout.client import JobQueue

            app = make_app(
                broker.url, result_backend=broker.result_backend, visibility_timeout_s=broker.visibility_timeout_s
            )
            queue = JobQueue(app)
        self.queue = queue
        self.in_flight: dict[str, InFlight] = {}
        self._finished: list[str] = []  # jobs that ended before they were sent (duplicate, vanished...)
        self._workers: tuple[float, dict[str, dict[str, Any]]] = (float("-inf"), {})

    def capacity(self) -> int:
        return max(0, self.broker.in_flight - len(self.in_flight))

    def unavailable_errors(self) -> tuple[type[BaseException], ...]:
        return unavailable_errors()

    def stop(self) -> None:
        """Leave jobs out on workers as they are (the journal keeps them running): the next start
        re-attaches them."""
        self.in_flight.clear()

    # ------------------------------------------------------------------ start-up

    def still_out(self) -> set[str]:
        running = {j.id for j in self.journal.running()}
        return {job_id for job_id in load_task_map(self.journal) if job_id in running}

    def reattach(self, folders: dict[str, FolderConfig]) -> int:
        """Follow the tasks of jobs still out again (prepare is re-run: it only checks and
        hashes; nothing is sent again). Remove work folders of jobs no longer out."""
        saved = load_task_map(self.journal)
        for job_id in self.still_out():
            job = self.journal.get(job_id)
            if job is None:
                continue
            folder = folders.get(job.folder)
            if folder is None:
                # Its folder left the config: queued again, as an interrupted job of it would be.
                self.journal.requeue(job_id)
                continue
            attempt = self.lifecycle.begin(job, folder)
            if isinstance(attempt, str) or self.lifecycle.prepare(attempt) is not None:
                continue  # ended without the engine (changed, vanished): its work folder goes below
            task_id = saved[job_id]
            self.in_flight[job_id] = InFlight(attempt, task_id, work_dir_of(attempt), time.monotonic())
            try:
                if self.queue.state(task_id).state == "PENDING":
                    # Never marked queued: the coordinator stopped between journaling and sending.
                    self._send(attempt, task_id)
            except self.unavailable_errors() as exc:
                # The broker is away at start-up: ``poll`` looks again once it is back.
                attempt.log.error("dist.broker_unavailable", error=type(exc).__name__)
            attempt.log.info("job.reattached", task_id=task_id)
        save_task_map(self.journal, self.in_flight)
        removed = remove_stale_work_dirs(folders, set(self.in_flight))
        if removed:
            self.log.warning("output.work_dirs_removed", count=removed)
        return len(self.in_flight)

    # ------------------------------------------------------------------ the loop

    def submit(self, job: Job, folder: FolderConfig) -> None:
        """Prepare a claimed job and send it; a job that ends before the engine is reported by ``poll``."""
        attempt = self.lifecycle.begin(job, folder)
        if isinstance(attempt, str):
            self._finished.append(attempt)
            return
        outcome = self.lifecycle.prepare(attempt)
        if outcome is not None:
            self._finished.append(outcome)
            return
        try:
            how = stage_source(attempt.src, staged_of(attempt))
        except OSError as exc:
            # The input share refuses the id-named link (read-only, full): an I/O error of this
            # job, retried and then quarantined with its reason, never a broker outage.
            self._finished.append(self.lifecycle.complete(attempt, exc))
            return
        if how != "link":
            attempt.log.info("job.staged", how=how)  # a share without hard links: still no name sent
        task_id = f"{attempt.job.id}-{uuid.uuid4().hex[:8]}"
        # Journaled before it is sent, so that a restart follows this task instead of sending
        # the job again (see ``reattach``).
        self.in_flight[attempt.job.id] = InFlight(attempt, task_id, work_dir_of(attempt), time.monotonic())
        save_task_map(self.journal, self.in_flight)
        self._send(attempt, task_id)
        attempt.log.info("job.dispatched", task_id=task_id)

    def _send(self, a: Attempt, task_id: str) -> None:
        payload = build_payload(a, task_id, self.lifecycle.record.retry.max_attempts)
        stage_source(a.src, staged_of(a))  # kept as is when staged already (submit); again after a restart
        # The work folder exists exactly while the job is out: a delivery that finds none is a
        # late duplicate and runs nothing (anonymizer.scaleout.task).
        work_dir_of(a).mkdir(exist_ok=True)
        self.queue.submit(payload)

    def poll(self, folders: dict[str, FolderConfig]) -> list[str]:
        """Complete every job whose result has arrived; return their outcomes (and those of jobs
        that ended before they were sent)."""
        outcomes, self._finished = self._finished, []
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
                outcomes.append(finish(self.lifecycle, flight, state))
            finally:
                self.in_flight.pop(job_id, None)
                save_task_map(self.journal, self.in_flight)
                shutil.rmtree(flight.work_dir, ignore_errors=True)
                with contextlib.suppress(OSError):  # a stale one goes at the next start
                    staged_of(flight.attempt).unlink(missing_ok=True)
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
        # Journaled before it is sent, as in ``submit``: a restart follows the new task only.
        save_task_map(self.journal, self.in_flight)
        self._send(flight.attempt, flight.task_id)
        self.queue.discard(old)
        flight.attempt.log.warning(
            "job.reclaimed",
            task_id=flight.task_id,
            previous_task_id=old,
            dead_worker=str(holder),
            heartbeat_age_s=record.get("heartbeat_age_s"),
        )
