"""The coordinator's lifecycle of one claimed job: check, run, verify, publish, record, retire.

The order is what keeps evidence safe::

    source stat == journaled stat ─▶ SHA-256 ─▶ allow-list (magic bytes) ─▶ adopt or reuse?  prepare.py
      ─▶ run_job: engine.process(src, <output>/.anonymizer-tmp-<job><suffix>), which verifies
         the output (same kind, decodes fully, frame count) before naming it, and its SHA-256
      ─▶ fsync, SHA-256 == the verified one ─▶ hold for review, or link to its final name
         (never overwriting) + fsync folder                              publish.py, review.py
      ─▶ journal 'done' ─▶ audit line ─▶ journal 'audited'                          record.py
      ─▶ retention when due                                       anonymizer.daemon.retention

The engine call itself is ``anonymizer.jobs.run_job``, the part any worker runs: here in the
daemon's process (``run``), or on a Celery worker when the daemon has a broker (``begin``,
``prepare`` before the call, ``complete`` with what the worker returned; ``anonymizer.scaleout``).
Every expected error becomes an ``Outcome`` in one place (classify.py); the mount guard is
shares.py; the typed attempt is attempt.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path

from anonymizer.audit.log import AuditLog
from anonymizer.config import Profile
from anonymizer.daemon import retention
from anonymizer.daemon import review as decisions
from anonymizer.daemon.job import classify, publish, review
from anonymizer.daemon.job.attempt import Attempt, Log, StopRequested, log_context, source_unchanged
from anonymizer.daemon.job.prepare import prepare
from anonymizer.daemon.job.record import Finished, Recorder, write_missing_audit
from anonymizer.daemon.job.shares import MountGuard, ShareUnavailable
from anonymizer.daemon.metrics import Metrics
from anonymizer.fsutil import umask_file_mode
from anonymizer.jobs.outcome import Outcome
from anonymizer.jobs.run import EngineLike, JobOutput, run_job
from anonymizer.settings.daemon import FolderConfig, RetryPolicy
from anonymizer.store import Job, Journal

__all__ = ["Attempt", "Lifecycle", "Outcome", "ShareUnavailable", "StopRequested"]


@dataclass
class Lifecycle:
    """Runs claimed jobs to an ``Outcome``. ``engine_for(profile)`` returns the warm engine for a
    folder's profile. ``output_mode`` (the daemon config's; None: what the umask gives a new file)
    may be changed by a reload. ``retry`` is handed to the recorder, its one owner
    (``record.retry``)."""

    journal: Journal
    audit: AuditLog
    hmac_key: bytes
    engine_for: Callable[[Profile], EngineLike]
    retry: InitVar[RetryPolicy]
    log: Log
    metrics: Metrics | None = None
    should_stop: Callable[[], bool] = lambda: False
    heartbeat: Callable[[], None] = lambda: None
    report: Callable[[str, int, int], None] = lambda stage, done, total: None
    clock: Callable[[], float] = time.time
    output_mode: int | None = None
    record: Recorder = field(init=False)
    guard: MountGuard = field(default_factory=MountGuard, init=False)
    _last_progress: object = field(default=None, init=False)

    def __post_init__(self, retry: RetryPolicy) -> None:
        self._umask_mode = umask_file_mode()
        self.record = Recorder(self.journal, self.audit, self.hmac_key, retry, self.metrics, self.clock)

    @property
    def mode(self) -> int:
        """The mode every published output gets (direct, reused or approved after review)."""
        return self.output_mode if self.output_mode is not None else self._umask_mode

    def publish(self, tmp: Path, final: Path) -> Path:
        """Give a complete, verified file its final name and the output mode; return the name it got."""
        return publish.place(tmp, final, self.mode)

    def note_mounts(self, folders: Iterable[FolderConfig]) -> None:
        """Remember which mount holds each folder (at start-up, and for folders added by a reload)."""
        self.guard.note(folders)

    def progress(self, *args: object, **kwargs: object) -> None:
        """The engine's progress callback (also called while hashing and copying).

        Called after every frame of a video and every inference pass, several times a second
        while a video's stages work: it is where a SIGTERM turns into a requeue within seconds,
        whatever the job's size. Only a call that says something advanced proves progress (the
        heartbeat feeds the systemd watchdog only while such ticks keep coming): the calls a
        waiting pipeline makes repeat the last values, so a stuck stage cannot keep the daemon
        looking alive.
        """
        if len(args) == 3 and isinstance(args[0], str):
            self.report(*args)  # (stage, done, total): shown by `anonymizer status`
        seen = (args, tuple(sorted(kwargs.items())))
        if seen != self._last_progress or not args:
            self._last_progress = seen
            self.heartbeat()
        if self.should_stop():
            raise StopRequested()

    # ------------------------------------------------------------------ one job

    def run(self, job: Job, folder: FolderConfig) -> Outcome:
        """Run one claimed job in this process to an outcome and return it. Raise StopRequested
        only after requeueing the job."""
        attempt = self.begin(job, folder)
        if isinstance(attempt, Outcome):
            return attempt

        def step() -> Outcome:
            outcome = self._prepare(attempt)
            if outcome is not None:
                return outcome
            attempt.tmp = attempt.planned_tmp
            engine = attempt.require_engine()
            output = run_job(engine, attempt.src, attempt.planned_tmp, progress=self.progress, masks=attempt.masks)
            # The engine may have added the suffix the content needs: what it wrote is what is
            # removed if the job ends without publishing (held, vanished, failed verification).
            attempt.tmp = output.path
            return self._complete(attempt, output)

        return classify.guarded(attempt, step, self.record, self.guard)

    # The coordinator's half of a job that a remote worker runs (anonymizer.scaleout): ``prepare``
    # before the engine call, ``complete`` with what the worker returned. Both go through the
    # same checks and error handling as ``run``.

    def begin(self, job: Job, folder: FolderConfig) -> Attempt | Outcome:
        """Start a claimed job: an ``Attempt``, or the outcome when no attempt is left."""
        log = self.log.bind(**log_context(job, folder))
        if self.record.exhausted(job.attempts):
            # The attempts were all made (interrupted ones are counted at restart): none now.
            last_error = job.error or "process interrupted"
            return classify.give_up(
                job, folder, job.attempts, last_error, log, self.record, self.guard, counted=job.attempts
            )
        return Attempt(job, folder, log, time.monotonic())

    def prepare(self, a: Attempt) -> Outcome | None:
        """Run the checks before the engine call; return an outcome when the job ends there
        (vanished, duplicate, quarantined...) or None when the engine must run on ``a.src``."""
        return classify.guarded(a, lambda: self._prepare(a), self.record, self.guard)

    def complete(self, a: Attempt, output: JobOutput | BaseException) -> Outcome:
        """Finish a prepared job with the remote worker's output (verify, publish, audit) or
        with the error it reported (classified as if the engine had raised it here).

        Jobs run side by side on several workers, so another job of the same content (same job
        key) may have finished meanwhile: then its output is reused and this one discarded.
        """

        def step() -> Outcome:
            if isinstance(output, BaseException):
                raise output
            a.tmp = output.path
            assert a.sniffed is not None, "complete() before prepare()"
            reused = publish.reuse(a, a.sniffed, self.record, self.guard, self.mode, self.progress)
            if reused is not None:
                a.log.info("job.duplicate_result_discarded", reason="the same content finished first in another job")
                return reused
            return self._complete(a, output)

        return classify.guarded(a, step, self.record, self.guard)

    def give_up(self, a: Attempt, reason: str, error_type: str) -> Outcome:
        """Quarantine a prepared job with ``reason`` (a remote worker died on it too often)."""

        def step() -> Outcome:
            return classify.quarantine(a.job, a.folder, reason, error_type, a.log, self.record, self.guard)

        return classify.guarded(a, step, self.record, self.guard)

    def defer(self, a: Attempt, reason: str) -> Outcome:
        """Queue a prepared job again later without counting an attempt: no worker could take it
        (its models differ from ours). The input is not at fault, so it is never quarantined."""
        return self.record.refused(a.job.id, reason, a.log)

    def _prepare(self, a: Attempt) -> Outcome | None:
        return prepare(
            a, record=self.record, guard=self.guard, engine_for=self.engine_for, mode=self.mode, progress=self.progress
        )

    def _complete(self, a: Attempt, output: JobOutput) -> Outcome:
        """Verify the engine's output, then hold it for review or publish it, and record the job."""
        publish.check_masks(a, output)
        if not source_unchanged(a.folder, a.job):
            # The writer touched the file after it settled: what was anonymized may not be
            # what was hashed. Drop the output (classify.guarded) and let the scanner offer it again.
            return self.record.vanished(a.job, "source changed while it was processed; it will be offered again", a.log)
        out = publish.verify(a, output, self.progress)
        final_rel = out.final.relative_to(a.folder.output).as_posix()
        self.journal.set_pending_output(a.job.id, final_rel, out.sha256, out.size, out.summary)
        if review.required(a.folder):
            return review.hold(a, out, self.record)
        self.guard.require(a.folder.output)
        published = self.publish(out.tmp, out.final)
        a.tmp = None
        rel = published.relative_to(a.folder.output).as_posix()
        result = Finished(Outcome.ANONYMIZED, rel, out.sha256, out.size, out.summary, a.size)
        return self.record.done(a.job, a.folder, a.require_engine().models, a.started, a.log, result)

    # ------------------------------------------------------------------ every pass

    def retire_due(self, folders: Mapping[str, FolderConfig]) -> int:
        """Apply the recorded review decisions, then retention to every job whose delay has passed
        (anonymizer.daemon.retention). Return how many sources were retired."""
        decisions.apply_decisions(
            self.record, self.guard, folders, log=self.log, engine_for=self.engine_for, mode=self.mode
        )  # an approval makes its job due (review: required)
        return retention.retire_due(self.record, self.guard, folders, log=self.log, heartbeat=self.heartbeat)

    def write_missing_audit(self, folders: Mapping[str, FolderConfig]) -> int:
        """After a crash: write the audit line of finished jobs that were recorded but not audited."""
        return write_missing_audit(self.record, folders)
