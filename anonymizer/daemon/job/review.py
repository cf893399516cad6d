"""The review gate: which masks a job runs with, and holding a verified output for review.

Called by the lifecycle at two points: when a job is prepared (``masks_for_job``: the sidecars
beside the source, plus the masks of a rejection, which also key the job: ``keyed_profile``),
and instead of publishing when the folder's profile says ``review: required`` (``required``,
``hold``). Applying the decisions ``anonymizer review`` records is ``anonymizer.daemon.review``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from anonymizer.daemon.job.attempt import Attempt
from anonymizer.daemon.job.publish import Verified, copy_verified
from anonymizer.daemon.job.record import Recorder
from anonymizer.fsutil import make_private_dir
from anonymizer.jobs.outcome import Outcome
from anonymizer.mask.regions import ManualMasks
from anonymizer.review.hold import ReviewStore, review_record
from anonymizer.review.report import write_job_report
from anonymizer.review.sidecar import load_sidecars, parse_sidecar_text, sidecars_of
from anonymizer.settings.daemon import FolderConfig
from anonymizer.store import Job, Journal, display_rel

_stores: dict[tuple[Path, int], ReviewStore] = {}


def store_for(journal: Journal) -> ReviewStore:
    """The review store on the journal's file (one connection per thread, kept open)."""
    key = (Path(journal.path), threading.get_ident())
    if key not in _stores:
        _stores[key] = ReviewStore(Path(journal.path))
    return _stores[key]


def required(folder: FolderConfig) -> bool:
    """Return True when the folder's outputs wait for a reviewer's approval before publishing."""
    return folder.profile.review == "required"


def masks_for_job(journal: Journal, job: Job, folder: FolderConfig, src: Path) -> ManualMasks | None:
    """The sidecars beside ``src`` (the folder's ``.masks.yaml``, then ``<name>.masks.yaml``),
    plus the masks a reviewer gave when rejecting this job. Raise ManualMasksError (a
    MediaError: the job is quarantined with the reason) when one is invalid."""
    named = folder.profile.privacy.log_file_names
    paths = sidecars_of(src)
    labels = [
        str(display_rel(p.name)) if named else ("<folder sidecar>" if p.name.startswith(".") else "<sidecar>")
        for p in paths
    ]
    masks = load_sidecars(paths, labels) if paths else ManualMasks()
    rerun = store_for(journal).rerun_masks(job.id)
    if rerun is not None:
        masks = masks + parse_sidecar_text(rerun[0], "<review masks>")
    return masks if masks else None  # an empty sidecar changes nothing


def keyed_profile(profile_sha256: str, masks: ManualMasks | None) -> str:
    """The profile part of a job key: a sidecar changes the output, so it changes the job."""
    if masks is None:
        return profile_sha256
    return hashlib.sha256(f"{profile_sha256}+masks:{','.join(masks.sha256)}".encode()).hexdigest()


def hold(a: Attempt, out: Verified, record: Recorder) -> Outcome:
    """Keep a verified output for review instead of publishing it. Return HELD.

    The copy and its QA report go to ``<state_dir>/review/<job id>/``; the job's planned output
    is already recorded (``set_pending_output``); the job moves to state 'review'.
    """
    job, folder = a.job, a.folder
    store = store_for(record.journal)
    folder_path = make_private_dir(store.copy_dir(job.id))
    copy_name = "output" + out.final.suffix.lower()
    copy = folder_path / copy_name
    copy.unlink(missing_ok=True)  # an earlier round's copy, rejected
    copy_verified(out.tmp, copy, out.sha256, out.size, mismatch="the review copy does not match the verified output")
    name = display_rel(job.rel_path) if folder.profile.privacy.log_file_names else None
    for path in write_job_report(copy, out.summary, folder.profile, folder_path, job.id, job_id=job.id, file_name=name):
        os.chmod(path, 0o600)  # like everything in state_dir: the service user's only
    now = record.clock()
    store.hold(job.id, folder.name, copy_name, now)
    audit = review_record(
        job.id,
        "held",
        now,
        folder=folder.name,
        input_sha256=job.input_sha256,
        output={"sha256": out.sha256, "size": out.size},
        **{k: out.summary[k] for k in ("manual", "exclusions") if k in out.summary},
    )
    return record.held(job, folder, audit, out.sha256, a.started, a.log)
