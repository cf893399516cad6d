"""Applying the review decisions ``anonymizer review`` recorded (anonymizer.review.hold).

Run by the lifecycle on every pass of the main loop, before retention (an approval makes its job
due under ``review: required``). It goes through the job package's public steps only: the mount
guard, ``publish.find_published`` and ``publish.copy_verify_publish`` to publish an approved copy,
and the ``Recorder`` to record it. Holding an output in the first place is the review gate,
``anonymizer.daemon.job.review``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from anonymizer.config import Profile
from anonymizer.daemon.job.attempt import Log
from anonymizer.daemon.job.publish import copy_verify_publish, find_published
from anonymizer.daemon.job.record import Finished, Recorder
from anonymizer.daemon.job.review import store_for
from anonymizer.daemon.job.shares import MountGuard
from anonymizer.errors import JobError
from anonymizer.jobs.outcome import Outcome
from anonymizer.jobs.run import EngineLike
from anonymizer.review.hold import Review, ReviewStore, remove_copy, review_record
from anonymizer.settings.daemon import FolderConfig
from anonymizer.store import Job


def apply_decisions(
    record: Recorder,
    guard: MountGuard,
    folders: Mapping[str, FolderConfig],
    *,
    log: Log,
    engine_for: Callable[[Profile], EngineLike],
    mode: int,
) -> int:
    """Apply every recorded decision not applied yet; return how many. Idempotent: a decision
    interrupted half-way (a crash, a share away) is applied again on a later pass, and an output
    published before the interruption is adopted, never published twice."""
    store = store_for(record.journal)
    done = 0
    for review in store.decided():
        folder = folders.get(review.folder)
        if folder is None:
            continue  # folder removed from the config: leave it waiting
        job = record.journal.get(review.job_id)
        job_log = log.bind(job_id=review.job_id, folder=review.folder)
        now = record.clock()
        if job is None:
            store.applied(review.job_id, "closed", now)
            continue
        try:
            if review.state == "approved":
                approve(record, guard, store, review, job, folder, job_log, engine_for, mode)
            else:
                reject(record, store, review, job, job_log)
        except (OSError, JobError) as exc:
            # A share away, a full disk: the decision stays recorded and is applied later.
            job_log.warning("review.apply_failed", reason=getattr(exc, "strerror", None) or str(exc))
            continue
        done += 1
    _gauges(record, store, folders)
    return done


def approve(
    record: Recorder,
    guard: MountGuard,
    store: ReviewStore,
    review: Review,
    job: Job,
    folder: FolderConfig,
    log: Log,
    engine_for: Callable[[Profile], EngineLike],
    mode: int,
) -> None:
    """Publish an approved copy (or adopt it, published before an interruption) and record it."""
    now = record.clock()
    if job.state == "review":
        guard.require(folder.output)
        published = find_published(job, folder)  # an approval interrupted after publishing
        if published is None:
            assert job.output_rel is not None and job.output_sha256 is not None  # set_pending_output before the hold
            final = folder.output / job.output_rel
            # The output_mode rule, as a direct output: the copy held in state_dir is 0600,
            # which the published file used to keep (issue 25: readers were locked out).
            placed = copy_verify_publish(
                store.copy_dir(job.id) / review.copy_name,
                final,
                job.id,
                job.output_sha256,
                None,
                mode,
                mismatch="the review copy changed since it was held",
            )
            published = placed.relative_to(folder.output).as_posix()
        # As if published at once: 'done', audited, retention due after the profile's delay.
        result = Finished(Outcome.ANONYMIZED, published, job.output_sha256, job.output_size, job.summary, job.size)
        record.done(job, folder, engine_for(folder.profile).models, time.monotonic(), log, result)
    # Past this point the job is published (now or before an interruption): record it once.
    store.applied(job.id, "published", now)
    record.audit_event(
        review_record(job.id, "approved", now, operator=review.operator, output_sha256=job.output_sha256), log
    )
    remove_copy(store.copy_dir(job.id))
    log.info("review.approved", operator=review.operator)


def reject(record: Recorder, store: ReviewStore, review: Review, job: Job, log: Log) -> None:
    """Run a rejected job again with the reviewer's masks, or close it with nothing published."""
    now = record.clock()
    remove_copy(store.copy_dir(job.id))
    if job.state == "review" and review.masks_yaml is not None:
        store.applied(job.id, "rerun", now)
        record.journal.requeue(job.id)  # runs again with the reviewer's masks, then is held again
        action = "rejected-rerun"
    else:
        store.applied(job.id, "closed", now)
        if job.state == "review":
            record.rejected(job)  # nothing is published; the source stays where it is (retention 'kept')
        action = "rejected"
    record.audit_event(
        review_record(job.id, action, now, operator=review.operator, masks_sha256=review.masks_sha256), log
    )
    if action == "rejected":
        record.journal.mark_audited(job.id)
    log.info("review." + action.replace("-", "_"), operator=review.operator)


def _gauges(record: Recorder, store: ReviewStore, folders: Mapping[str, FolderConfig]) -> None:
    metrics = record.metrics
    if metrics is None or not hasattr(metrics, "review_waiting"):
        return
    waiting = store.waiting()
    per_folder: dict[str, int] = {}
    for r in waiting:
        per_folder[r.folder] = per_folder.get(r.folder, 0) + 1
    for name in folders:
        metrics.review_waiting.labels(name).set(per_folder.get(name, 0))
    metrics.review_oldest_waiting_s.set(max(0.0, record.clock() - waiting[0].held_at) if waiting else 0.0)
