"""Retention: what happens to a source once its output is written, verified and recorded.

``keep`` leaves it, ``delete`` unlinks it, ``move`` moves it under ``retention.move_to``
(sub-folders mirrored, unique name on collision), each after ``retention.after``. Before touching
a source the journal must say ``done`` + audited, and the file must still be the version that was
hashed (same size, mtime and inode): a file replaced since then is new evidence, not ours to retire.
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass

from anonymizer.daemon.config import FolderConfig
from anonymizer.daemon.journal import FileStat, Job
from anonymizer.daemon.scanner import DONE_SUFFIX, resolve_inside
from anonymizer.durable import fsync_dir, move_no_overwrite


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
