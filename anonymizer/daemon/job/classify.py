"""Exception → Outcome: the per-job error handling, caught narrowly and once (borgmatic's pattern).

A ``MediaError`` is the input's fault and quarantines at once; ``OSError``, ``JobError`` and
``ModelError`` may be transient and are retried with backoff, then quarantined; a share that is
away defers the job without counting an attempt; a source that changed meanwhile has vanished.
Anything else is a bug and stops the process: systemd restarts it and the journal counts the
interrupted attempt. Quarantine itself (moving the source aside) lives here too, since each of
its failures maps to another outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from anonymizer.daemon.job.attempt import OUTSIDE_INPUT, Attempt, Log, StopRequested, source_path, source_unchanged
from anonymizer.daemon.job.record import Recorder
from anonymizer.daemon.job.shares import MountGuard, ShareUnavailable
from anonymizer.daemon.quarantine import quarantine_file
from anonymizer.errors import JobError, MediaError, ModelError
from anonymizer.jobs.outcome import Outcome
from anonymizer.logs import describe_error
from anonymizer.settings.daemon import FolderConfig
from anonymizer.store import Job

T = TypeVar("T", Outcome, Outcome | None)


def guarded(a: Attempt, step: Callable[[], T], record: Recorder, guard: MountGuard) -> T:
    """Run ``step`` with the per-job error handling: each expected error becomes an outcome
    (``step``'s own result is returned as is: None from ``prepare`` means "run the engine").

    Raise StopRequested (after requeueing the job) and any unexpected exception. Whatever
    happens, an output written and not published (``a.tmp``) is removed.
    """
    job, folder = a.job, a.folder
    scrub_paths: list[Path | str] = [folder.input / job.rel_path, job.rel_path]
    try:
        return step()
    except StopRequested:
        record.journal.requeue(job.id)
        a.log.info("job.requeued", reason="stop requested")
        raise
    except ShareUnavailable as exc:
        record.failure(folder.name, "io")
        return record.deferred(job.id, describe_error(exc, scrub_paths), a.log, shown=exc.strerror)
    except MediaError as exc:
        if not source_unchanged(folder, job):
            return record.vanished(job, "source changed or disappeared while it was processed", a.log)
        return quarantine(job, folder, describe_error(exc, scrub_paths), type(exc).__name__, a.log, record, guard)
    except FileNotFoundError as exc:
        if not source_unchanged(folder, job):
            return record.vanished(job, "source disappeared before it was processed", a.log)
        return retry(job, folder, describe_error(exc, scrub_paths), "io", a.log, record, guard)
    except (OSError, JobError, ModelError) as exc:
        kind = "io" if isinstance(exc, OSError) else "job"
        return retry(job, folder, describe_error(exc, scrub_paths), kind, a.log, record, guard)
    finally:
        if a.tmp is not None:
            try:
                a.tmp.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                # A read-only or vanished share: nothing was published; startup cleans up.
                a.log.warning("output.cleanup_failed", reason=exc.strerror or type(exc).__name__)
            a.tmp = None


def retry(
    job: Job, folder: FolderConfig, reason: str, kind: str, log: Log, record: Recorder, guard: MountGuard
) -> Outcome:
    """A possibly transient failure of ``kind`` (io, job): retry later, or quarantine once the
    attempts are used up."""
    record.failure(folder.name, kind)
    if record.exhausted(job.attempts + 1):
        return give_up(job, folder, job.attempts + 1, reason, log, record, guard)
    return record.retried(job, reason, log)


def give_up(
    job: Job,
    folder: FolderConfig,
    attempts: int,
    last_error: str,
    log: Log,
    record: Recorder,
    guard: MountGuard,
    *,
    counted: int | None = None,
) -> Outcome:
    """Quarantine a job whose ``attempts`` used up the retry policy, naming its last error.
    ``counted``: as ``quarantine``'s ``attempts``."""
    reason = f"gave up after {attempts} attempts; last error: {last_error}"
    return quarantine(job, folder, reason, "RetriesExhausted", log, record, guard, attempts=counted)


def quarantine(
    job: Job,
    folder: FolderConfig,
    reason: str,
    error_type: str,
    log: Log,
    record: Recorder,
    guard: MountGuard,
    *,
    attempts: int | None = None,
) -> Outcome:
    """Move the source to quarantine with its reason and record it. ``attempts``: how many were
    made in all (default: the journal's count plus this run's attempt)."""
    job = record.journal.get(job.id) or job
    attempts = job.attempts + 1 if attempts is None else attempts
    try:
        src = source_path(folder, job)
        if src is None:
            return record.vanished(job, OUTSIDE_INPUT, log)
        guard.require(folder.input, folder.quarantine)
        quarantine_file(
            src,
            folder.quarantine,
            job.rel_path,
            reason=reason,
            job_id=job.id,
            input_sha256=job.input_sha256,
            error_type=error_type,
            now=record.clock(),
        )
    except FileNotFoundError:
        return record.vanished(job, "source disappeared before it could be quarantined", log)
    except ShareUnavailable as exc:
        return record.deferred(job.id, f"{reason}; quarantine waits: {exc.strerror}", log, shown=exc.strerror)
    except OSError as exc:
        # Could not move it aside: leave it where it is, try again later; never delete.
        return record.quarantine_failed(job, reason, exc.strerror or type(exc).__name__, log)
    return record.quarantined(job, folder, reason, error_type, attempts, log)
