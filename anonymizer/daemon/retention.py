"""Retention: what happens to a source once its output is written, verified and recorded.

``keep`` leaves it, ``delete`` unlinks it, ``move`` moves it under ``retention.move_to``
(sub-folders mirrored, unique name on collision), each after ``retention.after``. Before touching
a source the journal must say ``done`` + audited, the recorded output must still be in place, and
the file must still be the version that was hashed (same size, mtime and inode): a file replaced
since then is new evidence, not ours to retire.

``retire_due`` is the loop the lifecycle runs on every pass; it records through the lifecycle's
``Recorder`` and checks shares with its ``MountGuard`` (``anonymizer.daemon.job``).
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from anonymizer.daemon.job.attempt import Log, log_context
from anonymizer.daemon.job.publish import output_in_place
from anonymizer.daemon.job.record import Recorder
from anonymizer.daemon.job.shares import MountGuard, ShareUnavailable, folder_paths
from anonymizer.durable import fsync_dir, move_no_overwrite
from anonymizer.fsutil import DONE_SUFFIX, resolve_inside
from anonymizer.settings.daemon import FolderConfig
from anonymizer.store import FileStat, Job


@dataclass(frozen=True)
class RetentionResult:
    """``action`` is one of: kept, deleted, moved, source-gone, source-changed."""

    action: str
    detail: str | None = None


def apply_retention(job: Job, folder: FolderConfig, *, original_verified: bool) -> RetentionResult:
    """Retire the source of a finished job according to the folder's profile.

    Args:
        original_verified: for a duplicate, whether the job it duplicates has a verified output
            recorded; for an anonymized job, whether its own output is recorded.

    Raise OSError when the filesystem refuses (the caller retries later) and ValueError when the
    journal does not allow retention (a bug: the caller must not ask).
    """
    if job.state != "done" or not job.audited or not original_verified:
        raise ValueError(f"job {job.id}: retention requested before the output was verified and recorded")
    policy = folder.profile.retention
    if policy.source == "keep":
        return RetentionResult("kept")
    try:
        src = resolve_inside(folder.input, job.rel_path)
        st = os.lstat(src)
    except FileNotFoundError:
        return RetentionResult("source-gone", "the source was removed by someone else")
    if not stat_mod.S_ISREG(st.st_mode) or FileStat(st.st_size, st.st_mtime_ns, st.st_ino) != job.stat:
        return RetentionResult("source-changed", "the source changed after it was hashed; left in place")
    if policy.source == "delete":
        os.unlink(src)
        fsync_dir(src.parent)
        action = RetentionResult("deleted")
    else:
        target_root = folder.retention_move_to
        assert target_root is not None  # profile validation requires move_to for 'move'
        move_no_overwrite(src, target_root / job.rel_path, expected_sha256=job.input_sha256)
        action = RetentionResult("moved")
    marker = src.with_name(src.name + DONE_SUFFIX)
    if marker.is_file() and not marker.is_symlink():
        marker.unlink()
    return action


def retire_due(
    record: Recorder,
    guard: MountGuard,
    folders: Mapping[str, FolderConfig],
    *,
    log: Log,
    heartbeat: Callable[[], None] = lambda: None,
) -> int:
    """Apply retention to every recorded job whose delay has passed. Return how many.

    Each job, duplicates included, has its own recorded output; the source is deleted or moved
    only while that output is still in place. A try that fails is retried with backoff up to
    ``retry.max_attempts`` times; then the source is held (left in place for good, shown by
    ``anonymizer status`` and the metrics). A share that is away does not count as a try.
    """
    done = 0
    for job in record.journal.due_for_retention(record.clock()):
        folder = folders.get(job.folder)
        if folder is None:
            continue  # folder removed from the config: leave its sources alone
        job_log = log.bind(**log_context(job, folder))
        verified = bool(job.output_sha256) and bool(job.output_rel)
        try:
            if folder.profile.retention.source != "keep":
                guard.require(*folder_paths(folder))
                if verified and not output_in_place(folder, job):
                    raise OSError(errno.ENOENT, "the recorded output is not in the output folder")
            result = apply_retention(job, folder, original_verified=verified)
        except ShareUnavailable as exc:
            record.retention_deferred(job, exc.strerror, job_log)
            continue
        except OSError as exc:
            record.retention_failed(job, folder, exc.strerror or type(exc).__name__, job_log)
            continue
        record.retired(job, folder, result.action, result.detail, job_log)
        done += 1
        heartbeat()
    return done
