"""The one writer of a job's outcome: journal row, audit line and metrics, in that order.

Every way a job ends (done, duplicate, quarantined, vanished, retried, deferred, held, rejected,
retired) goes through a ``Recorder`` method, so the order that keeps evidence safe is written
once: the journal first (the truth after a crash), then the audit line (``append_audit``: the
line plus the chain head kept in the journal), then ``mark_audited``, which is what allows
retention. An audit folder that refuses a write never sends a recorded job back to the retry
path: it stays unaudited and ``write_missing_audit`` writes the line later.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from anonymizer.audit.log import AuditLog, path_hmac
from anonymizer.audit.records import job_record, retention_record, utc_iso
from anonymizer.daemon.job.attempt import Log
from anonymizer.daemon.metrics import Metrics
from anonymizer.jobs.backoff import backoff_s
from anonymizer.jobs.outcome import Outcome
from anonymizer.settings.daemon import FolderConfig, RetryPolicy
from anonymizer.store import Job, Journal, append_audit, display_rel

# An audit record: the JSON object one line of the audit log holds (anonymizer.audit.records).
AuditRecord = dict[str, Any]


@dataclass(frozen=True)
class Finished:
    """A job that ends with an output in place: what is recorded for it."""

    outcome: Outcome  # ANONYMIZED or DUPLICATE
    output_rel: str
    output_sha256: str | None
    output_size: int | None
    summary: Mapping[str, Any]
    input_size: int
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Recorder:
    """Writes outcomes to the journal, the audit log and the metrics. Owns the retry policy
    (``retry``): the backoff before each try (``delay_s``) and when the tries are used up
    (``exhausted``), for jobs and for retention alike."""

    journal: Journal
    audit: AuditLog
    hmac_key: bytes
    retry: RetryPolicy
    metrics: Metrics | None = None
    clock: Callable[[], float] = field(default=time.time)

    # ------------------------------------------------------------------ audit

    def append_audit(self, record: AuditRecord) -> None:
        """Append one audit line and keep the chain's head in the journal (both or an OSError)."""
        append_audit(self.journal, self.audit, record)

    def audit_job(self, job_id: str, record: AuditRecord, log: Log) -> None:
        """Write a finished job's audit line, then mark it audited (which allows retention)."""
        try:
            self.append_audit(record)
        except OSError as exc:
            log.error("audit.write_failed", reason=exc.strerror or type(exc).__name__)
            self.failure(str(record.get("folder", "")), "audit")
            return
        self.journal.mark_audited(job_id)

    def audit_event(self, record: AuditRecord, log: Log) -> None:
        """Write the audit line of something the journal already has (a review decision, a
        retirement); a refused write only loses the line, logged."""
        try:
            self.append_audit(record)
        except OSError as exc:
            log.error("audit.write_failed", reason=exc.strerror or type(exc).__name__, action=record.get("action"))

    def job_line(self, job: Job, folder: FolderConfig | None, **fields: Any) -> AuditRecord:
        """``job``'s audit line (``anonymizer.audit.records.job_record``): its id, its folder, its
        source as ``path_ref`` names it and its input's SHA-256 come from the job; ``fields``
        give the rest (outcome, time_s, input_size...). ``folder`` is None for a folder no
        longer configured: the line then names the journal's folder and the source by HMAC."""
        return job_record(
            job_id=job.id,
            folder=job.folder if folder is None else folder.name,
            path_ref=self.path_ref(job, folder),
            input_sha256=job.input_sha256,
            **fields,
        )

    def path_ref(self, job: Job, folder: FolderConfig | None) -> dict[str, str]:
        """How the audit names a job's source: its path when the profile allows names, else an HMAC."""
        if folder is not None and folder.profile.privacy.log_file_names:
            return {"path": display_rel(job.rel_path)}
        return {"path_hmac": path_hmac(self.hmac_key, job.folder, job.rel_path)}

    def failure(self, folder: str, kind: str) -> None:
        """Count one failure of ``kind`` (io, job, media, audit) in ``folder``."""
        if self.metrics is not None:
            self.metrics.failures.labels(folder, kind).inc()

    def delay_s(self, attempts: int) -> float:
        """The backoff before try number ``attempts + 1``."""
        return backoff_s(attempts, self.retry.base_s, self.retry.max_s)

    def exhausted(self, attempts: int) -> bool:
        """Whether ``attempts`` tries made use up the policy: no further try is made."""
        return attempts >= self.retry.max_attempts

    # ------------------------------------------------------------------ outcomes

    def done(
        self, job: Job, folder: FolderConfig, models: list[dict[str, Any]], started: float, log: Log, result: Finished
    ) -> Outcome:
        """Record a job whose output is in place: 'done', audited, retention due after the profile's delay."""
        now = self.clock()
        policy = folder.profile.retention
        retain_after = now + policy.after_s
        summary = dict(result.summary)
        self.journal.mark_done(
            job.id,
            outcome=result.outcome,
            output_rel=result.output_rel,
            output_sha256=result.output_sha256,
            output_size=result.output_size,
            summary=summary,
            retain_after=retain_after,
            duplicate_of=result.duplicate_of,
        )
        record = self.job_line(
            job,
            folder,
            outcome=result.outcome,
            time_s=now,
            input_size=result.input_size,
            output_sha256=result.output_sha256,
            output_size=result.output_size,
            duplicate_of=result.duplicate_of,
            summary=summary,
            profile_sha256=folder.profile.sha256,
            models=list(models),
            retention={"policy": policy.source, "after_s": policy.after_s, "due": utc_iso(retain_after)},
            attempts=job.attempts + 1,
        )
        self.audit_job(job.id, record, log)
        seconds = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.record_success(folder.name, result.outcome, seconds, summary)
        log.info(
            "job.done",
            outcome=result.outcome,
            output_sha256=result.output_sha256,
            counts=summary.get("counts"),
            frames=summary.get("frames"),
            seconds=round(seconds, 3),
            duplicate_of=result.duplicate_of,
        )
        return result.outcome

    def vanished(self, job: Job, reason: str, log: Log) -> Outcome:
        """The source changed or disappeared: nothing to do until it is offered again."""
        self.journal.mark_vanished(job.id, reason)
        if self.metrics is not None:
            self.metrics.jobs.labels(job.folder, Outcome.VANISHED).inc()
        log.info("job.vanished", reason=reason)
        return Outcome.VANISHED

    def retried(self, job: Job, reason: str, log: Log) -> Outcome:
        """Queue the job again after a backoff, counting this attempt."""
        delay = self.delay_s(job.attempts + 1)
        attempts = self.journal.retry_later(job.id, reason, delay)
        log.warning("job.retry", reason=reason, attempt=attempts, retry_in_s=round(delay, 1))
        return Outcome.RETRY

    def quarantine_failed(self, job: Job, reason: str, why: str, log: Log) -> Outcome:
        """The source could not be moved aside: it stays where it is and is tried again; never deleted."""
        delay = self.delay_s(job.attempts + 1)
        self.journal.retry_later(job.id, f"{reason}; quarantine failed: {why}", delay)
        log.error("job.quarantine_failed", reason=why, retry_in_s=round(delay, 1))
        return Outcome.RETRY

    def deferred(self, job_id: str, reason: str, log: Log, *, shown: str | None) -> Outcome:
        """Queue the job again later without counting an attempt: a share is away."""
        return self._defer(job_id, reason, log.warning, "job.deferred", shown)

    def refused(self, job_id: str, reason: str, log: Log) -> Outcome:
        """Queue the job again later without counting an attempt: no worker could take it (its
        models differ from ours). The input is not at fault, so it is never quarantined."""
        return self._defer(job_id, reason, log.error, "job.worker_refused", reason)

    def _defer(self, job_id: str, reason: str, emit: Callable[..., object], event: str, shown: str | None) -> Outcome:
        """Journal ``reason`` and a retry after the first backoff, attempts untouched; log
        ``event`` through ``emit`` (the level) with ``shown``, the reason fit for the log."""
        delay = self.delay_s(1)
        self.journal.defer(job_id, reason, delay)
        emit(event, reason=shown, retry_in_s=round(delay, 1))
        return Outcome.DEFERRED

    def quarantined(
        self, job: Job, folder: FolderConfig, reason: str, error_type: str, attempts: int, log: Log
    ) -> Outcome:
        """Record a source that was moved to quarantine with its reason."""
        self.journal.mark_quarantined_after(job.id, reason, attempts)
        record = self.job_line(
            job,
            folder,
            outcome=Outcome.QUARANTINED,
            time_s=self.clock(),
            input_size=job.size,
            profile_sha256=folder.profile.sha256,
            reason=reason,
            attempts=attempts,
        )
        self.audit_job(job.id, record, log)
        if self.metrics is not None:
            self.metrics.jobs.labels(folder.name, Outcome.QUARANTINED).inc()
            if error_type != "RetriesExhausted":
                self.metrics.failures.labels(folder.name, "media").inc()
        log.warning("job.quarantined", reason=reason)
        return Outcome.QUARANTINED

    def held(
        self, job: Job, folder: FolderConfig, record: AuditRecord, out_sha: str, started: float, log: Log
    ) -> Outcome:
        """Record a verified output kept for review (the review store already holds it)."""
        self.audit_event(record, log)
        if self.metrics is not None:
            self.metrics.jobs.labels(folder.name, Outcome.HELD).inc()
        log.info("job.held_for_review", output_sha256=out_sha, seconds=round(time.monotonic() - started, 3))
        return Outcome.HELD

    def rejected(self, job: Job) -> Outcome:
        """A reviewer rejected a held output: nothing is published and the source stays (retention 'kept')."""
        self.journal.mark_done(
            job.id,
            outcome=Outcome.REJECTED,
            output_rel=None,
            output_sha256=None,
            output_size=None,
            summary=job.summary,
            retain_after=math.inf,
        )
        self.journal.mark_retired(job.id, "kept")
        return Outcome.REJECTED

    # ------------------------------------------------------------------ retention

    def retired(self, job: Job, folder: FolderConfig, action: str, detail: str | None, log: Log) -> None:
        """Record what retention did to a source (kept, deleted, moved, source-gone, source-changed)."""
        now = self.clock()
        self.journal.mark_retired(job.id, action)
        if action != "kept":
            # The action happened and the journal has it; a refused line is only logged.
            self.audit_event(retention_record(job_id=job.id, action=action, time_s=now, detail=detail), log)
        if self.metrics is not None:
            self.metrics.retention.labels(folder.name, action).inc()
        log.info("retention.applied", action=action)

    def retention_deferred(self, job: Job, shown: str | None, log: Log) -> None:
        """A share is away: try this retirement again later, not counted as a try."""
        delay = self.delay_s(1)
        self.journal.postpone_retention(job.id, delay)
        log.warning("retention.deferred", reason=shown, retry_in_s=round(delay, 1))

    def retention_failed(self, job: Job, folder: FolderConfig, reason: str, log: Log) -> None:
        """A retirement the filesystem refused: retried with backoff, then the source is held."""
        delay = self.delay_s(job.retention_attempts + 1)
        attempts = self.journal.retention_failed(job.id, reason, delay, self.retry.max_attempts)
        if self.metrics is not None:
            self.metrics.retention_failures.labels(folder.name).inc()
        if self.exhausted(attempts):
            log.error("retention.held", reason=reason, attempts=attempts, source="left in place")
        else:
            log.warning("retention.failed", reason=reason, attempt=attempts, retry_in_s=round(delay, 1))


def write_missing_audit(record: Recorder, folders: Mapping[str, FolderConfig]) -> int:
    """After a crash: write the audit line of finished jobs that were recorded but not audited
    (or whose line the audit folder refused); return how many were marked audited."""
    pending = record.journal.unaudited()
    if not pending:
        return 0
    already = record.audit.job_ids()
    for job in pending:
        if job.id not in already:
            record.append_audit(
                record.job_line(
                    job,
                    folders.get(job.folder),
                    outcome=job.outcome or job.state,
                    time_s=job.updated_at,
                    input_size=job.size,
                    output_sha256=job.output_sha256,
                    output_size=job.output_size,
                    duplicate_of=job.duplicate_of,
                    summary=job.summary,
                    reason=job.error if job.state == "quarantined" else None,
                    # A quarantined job's count includes its last attempt; a finished
                    # job's counts only the failed ones before it.
                    attempts=job.attempts if job.state == "quarantined" else job.attempts + 1,
                )
            )
        record.journal.mark_audited(job.id)
    return len(pending)
