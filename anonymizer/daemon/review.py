"""The daemon's side of the review hold (anonymizer.review.hold): masks for a job, holding a
verified output, and applying the decisions ``anonymizer review`` recorded.

Called from the worker at three points only: when a job is prepared (``masks_for_job``: the
sidecars beside the source, plus the masks of a rejection), instead of publishing when the
profile says ``review: required`` (``hold_output``), and on every pass of the main loop before
retention (``apply_decisions``).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from anonymizer.daemon.fsutil import make_private_dir
from anonymizer.daemon.journal import display_rel
from anonymizer.durable import copy_new_file, sha256_file, temp_output_for
from anonymizer.errors import JobError
from anonymizer.mask.regions import ManualMasks
from anonymizer.review.hold import ReviewStore, remove_copy, review_record

_stores: dict[tuple[Path, int], ReviewStore] = {}


def store_for(journal: Any) -> ReviewStore:
    """The review store on the worker's journal file (one connection per thread, kept open)."""
    key = (Path(journal.path), threading.get_ident())
    if key not in _stores:
        _stores[key] = ReviewStore(Path(journal.path))
    return _stores[key]


def masks_for_job(worker: Any, job: Any, folder: Any, src: Path) -> ManualMasks | None:
    """The sidecars beside ``src`` (the folder's ``.masks.yaml``, then ``<name>.masks.yaml``),
    plus the masks a reviewer gave when rejecting this job. Raise ManualMasksError (a
    MediaError: the job is quarantined with the reason) when one is invalid."""
    from anonymizer.review.sidecar import load_sidecars, parse_sidecar_text, sidecars_of

    named = folder.profile.privacy.log_file_names
    paths = sidecars_of(src)
    labels = [str(display_rel(p.name)) if named else ("<folder sidecar>" if p.name.startswith(".") else "<sidecar>") for p in paths]
    masks = load_sidecars(paths, labels) if paths else ManualMasks()
    rerun = store_for(worker.journal).rerun_masks(job.id)
    if rerun is not None:
        extra = parse_sidecar_text(rerun[0], "<review masks>")
        masks = masks + extra
    return masks if masks else None  # an empty sidecar changes nothing


def keyed_profile(profile_sha256: str, masks: ManualMasks | None) -> str:
    """The profile part of a job key: a sidecar changes the output, so it changes the job."""
    if masks is None:
        return profile_sha256
    return hashlib.sha256(f"{profile_sha256}+masks:{','.join(masks.sha256)}".encode()).hexdigest()


def hold_output(worker: Any, a: Any, tmp: Path, final: Path, summary: dict[str, Any], out_sha: str, out_size: int) -> str:
    """Keep a verified output for review instead of publishing it. Return 'held'.

    The copy and its QA report go to ``<state_dir>/review/<job id>/``; the job's planned output
    is already recorded (``set_pending_output``); the job moves to state 'review'.
    """
    job, folder, log = a.job, a.folder, a.log
    store = store_for(worker.journal)
    folder_path = make_private_dir(store.copy_dir(job.id))
    copy_name = "output" + final.suffix.lower()
    copy = folder_path / copy_name
    copy.unlink(missing_ok=True)  # an earlier round's copy, rejected
    copy_new_file(tmp, copy, mode=0o600)
    if sha256_file(copy, follow_symlinks=False)[0] != out_sha:
        raise JobError("the review copy does not match the verified output")
    from anonymizer.review.report import write_job_report

    name = display_rel(job.rel_path) if folder.profile.privacy.log_file_names else None
    for path in write_job_report(copy, summary, folder.profile, folder_path, job.id, job_id=job.id, file_name=name):
        os.chmod(path, 0o600)  # like everything in state_dir: the service user's only
    now = worker.clock()
    store.hold(job.id, folder.name, copy_name, now)
    _audit(worker, review_record(
        job.id, "held", now, folder=folder.name, input_sha256=job.input_sha256,
        output={"sha256": out_sha, "size": out_size},
        **{k: summary[k] for k in ("manual", "exclusions") if k in summary},
    ), log)
    if worker.metrics is not None:
        worker.metrics.jobs.labels(folder.name, "held").inc()
    log.info("job.held_for_review", output_sha256=out_sha, seconds=round(time.monotonic() - a.started, 3))
    return "held"


def apply_decisions(worker: Any, folders: dict[str, Any]) -> int:
    """Apply every recorded decision not applied yet; return how many. Idempotent: a decision
    interrupted half-way (a crash, a share away) is applied again on a later pass, and an output
    published before the interruption is adopted, never published twice."""
    store = store_for(worker.journal)
    done = 0
    for review in store.decided():
        folder = folders.get(review.folder)
        if folder is None:
            continue  # folder removed from the config: leave it waiting
        job = worker.journal.get(review.job_id)
        log = worker.log.bind(job_id=review.job_id, folder=review.folder)
        now = worker.clock()
        if job is None:
            store.applied(review.job_id, "closed", now)
            continue
        try:
            if review.state == "approved":
                _publish(worker, store, review, job, folder, log)
            else:
                _reject(worker, store, review, job, log)
        except (OSError, JobError) as exc:
            # A share away, a full disk: the decision stays recorded and is applied later.
            log.warning("review.apply_failed", reason=getattr(exc, "strerror", None) or str(exc))
            continue
        done += 1
    _gauges(worker, store, folders)
    return done


def _publish(worker: Any, store: ReviewStore, review: Any, job: Any, folder: Any, log: Any) -> None:
    now = worker.clock()
    if job.state == "review":
        copy = store.copy_dir(job.id) / review.copy_name
        worker._require_mounted(folder.output)
        published = worker._find_published(job, folder)  # an approval interrupted after publishing
        if published is None:
            final = folder.output / job.output_rel
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_output_for(final, job.id, final.suffix)
            tmp.unlink(missing_ok=True)
            try:
                copy_new_file(copy, tmp, mode=0o600)
                if sha256_file(tmp, follow_symlinks=False)[0] != job.output_sha256:
                    raise JobError("the review copy changed since it was held")
                # The output_mode rule, as a direct output: the copy held in state_dir is 0600,
                # which the published file used to keep (issue 25: readers were locked out).
                published = worker.publish(tmp, final).relative_to(folder.output).as_posix()
            finally:
                tmp.unlink(missing_ok=True)
        # As if published at once: 'done', audited, retention due after the profile's delay.
        worker._finish(
            job, folder, worker.engine_for(folder.profile), time.monotonic(), log,
            outcome="anonymized", output_rel=published, output_sha256=job.output_sha256,
            output_size=job.output_size, summary=job.summary, input_size=job.size,
        )
    # Past this point the job is published (now or before an interruption): record it once.
    store.applied(job.id, "published", now)
    _audit(worker, review_record(job.id, "approved", now, operator=review.operator, output_sha256=job.output_sha256), log)
    remove_copy(store.copy_dir(job.id))
    log.info("review.approved", operator=review.operator)


def _reject(worker: Any, store: ReviewStore, review: Any, job: Any, log: Any) -> None:
    now = worker.clock()
    remove_copy(store.copy_dir(job.id))
    if job.state == "review" and review.masks_yaml is not None:
        store.applied(job.id, "rerun", now)
        worker.journal.requeue(job.id)  # runs again with the reviewer's masks, then is held again
        action = "rejected-rerun"
    else:
        store.applied(job.id, "closed", now)
        if job.state == "review":
            # Nothing is published; the source stays where it is (retention 'kept').
            worker.journal.mark_done(
                job.id, outcome="rejected", output_rel=None, output_sha256=None, output_size=None,
                summary=job.summary, retain_after=math.inf,
            )
            worker.journal.mark_retired(job.id, "kept")
        action = "rejected"
    _audit(worker, review_record(job.id, action, now, operator=review.operator, masks_sha256=review.masks_sha256), log)
    if action == "rejected":
        worker.journal.mark_audited(job.id)
    log.info("review." + action.replace("-", "_"), operator=review.operator)


def _audit(worker: Any, record: dict[str, Any], log: Any) -> None:
    try:
        worker._append_audit(record)
    except OSError as exc:
        # The decision is in the journal either way; only its line is missing.
        log.error("audit.write_failed", reason=exc.strerror or type(exc).__name__, action=record.get("action"))


def _gauges(worker: Any, store: ReviewStore, folders: dict[str, Any]) -> None:
    metrics = worker.metrics
    if metrics is None or not hasattr(metrics, "review_waiting"):
        return
    waiting = store.waiting()
    per_folder: dict[str, int] = {}
    for r in waiting:
        per_folder[r.folder] = per_folder.get(r.folder, 0) + 1
    for name in folders:
        metrics.review_waiting.labels(name).set(per_folder.get(name, 0))
    metrics.review_oldest_waiting_s.set(max(0.0, worker.clock() - waiting[0].held_at) if waiting else 0.0)
