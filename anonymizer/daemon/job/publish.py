"""Verify, place, adopt, reuse: how a verified file becomes a job's published output.

- ``check_verified``: the file about to be published is the one the engine verified (same
  SHA-256 and size), made durable first; the coordinator never decodes it again.
- ``place``: the final name, never overwriting, with the one mode every published output gets.
- ``copy_verified`` / ``copy_verify_publish``: the one copy of "copy, check the hash, publish",
  used by reuse and by a review approval (and the review hold's private copy).
- ``find_published`` (adopt): an output a crashed attempt published but did not record.
- ``reuse``: an earlier output of the same content, given to a new source without a rerun.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonymizer.daemon.job.attempt import Attempt, Progress
from anonymizer.daemon.job.record import Finished, Recorder
from anonymizer.daemon.job.shares import MountGuard
from anonymizer.durable import (
    candidate_names,
    copy_new_file,
    fsync_file,
    is_recorded_file,
    place_no_overwrite,
    sha256_file,
    temp_output_for,
)
from anonymizer.errors import JobError
from anonymizer.fsutil import resolve_inside, set_output_mode
from anonymizer.jobs.outcome import Outcome
from anonymizer.jobs.run import JobOutput, output_name
from anonymizer.media.sniff import Sniffed, expected_suffixes
from anonymizer.settings.daemon import FolderConfig
from anonymizer.store import Job, find_output_rel

# What a reused output keeps of the summary of the job that made it.
REUSED_SUMMARY_KEYS = ("kind", "counts", "frames", "duration_s")


@dataclass(frozen=True)
class Verified:
    """An engine output checked here: its final name, summary (with the engine's time), SHA-256 and size."""

    tmp: Path
    final: Path
    summary: dict[str, Any]
    sha256: str
    size: int


def place(tmp: Path, final: Path, mode: int) -> Path:
    """Give a complete, verified file its final name (never overwriting one) and ``mode``;
    return the name it got (``final`` or a ``-N`` variant)."""
    set_output_mode(tmp, mode)
    return place_no_overwrite(tmp, final)


def check_verified(tmp: Path, output: JobOutput, progress: Progress | None = None) -> tuple[str, int]:
    """Make the output durable here and return (sha, size) if it is the file the engine
    verified; raise JobError (retried: the input may be fine) if it is not.

    The engine verified it (anonymizer.media.verify) wherever it ran, this process or a remote
    worker; decoding it again here would double the coordinator's cost per job. A file changed
    since (truncated on the share, rewritten by a worker presumed dead) has another SHA-256 and
    is never published.
    """
    fsync_file(tmp)
    out_sha, out_size = sha256_file(tmp, follow_symlinks=False, every_64_mib=progress)
    if (out_sha, out_size) != (output.sha256, output.size):
        raise JobError(
            f"output failed verification: {out_size} bytes with SHA-256 {out_sha[:16]}, not the "
            f"{output.size} bytes ({output.sha256[:16]}) the engine verified"
        )
    return out_sha, out_size


def check_masks(a: Attempt, output: JobOutput) -> None:
    """Raise JobError when attempt ``a`` had sidecar masks and ``output`` was made without them.

    A worker that did not apply the sidecar (a remote one of another version) made an output
    without the operator's masks: it is never published.
    """
    if a.masks is not None and "manual" not in output.summary:
        raise JobError("the output was made without the job's sidecar masks")


def verify(a: Attempt, output: JobOutput, progress: Progress | None = None) -> Verified:
    """Check the engine's output of attempt ``a`` before it is published or held: its final
    name, and that it is the file the engine verified (JobError otherwise)."""
    final = a.final
    if output.extra_suffix:
        # The engine appended the suffix the content needs (output_name); the published name too.
        final = final.with_name(final.name + output.extra_suffix)
    sha256, size = check_verified(output.path, output, progress)
    timings = {**output.summary.get("timings", {}), "engine_s": round(output.engine_s, 3)}
    return Verified(output.path, final, {**output.summary, "timings": timings}, sha256, size)


def copy_verified(
    src: Path, dst: Path, sha256: str, size: int | None, *, mismatch: str, progress: Progress | None = None
) -> None:
    """Copy ``src`` to the new private file ``dst`` and check it has ``sha256`` (and ``size``).

    Raise JobError(``mismatch``) when the copy differs (the copy is left for the caller to remove).
    """
    copy_new_file(src, dst, mode=0o600, progress=progress)
    got_sha, got_size = sha256_file(dst, follow_symlinks=False, every_64_mib=progress)
    if got_sha != sha256 or (size is not None and got_size != size):
        raise JobError(mismatch)


def copy_verify_publish(
    src: Path,
    final: Path,
    job_id: str,
    sha256: str,
    size: int | None,
    mode: int,
    *,
    mismatch: str,
    progress: Progress | None = None,
    before_place: Callable[[], None] = lambda: None,
) -> Path:
    """Copy ``src`` beside ``final`` under the job's temporary name, check its hash, call
    ``before_place`` (record the pending output, check the share) and publish it; return the
    name it got. The temporary copy never outlives the call."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_output_for(final, job_id, final.suffix)
    tmp.unlink(missing_ok=True)  # this job's own copy, left by an interrupted try
    try:
        copy_verified(src, tmp, sha256, size, mismatch=mismatch, progress=progress)
        before_place()
        return place(tmp, final, mode)
    finally:
        tmp.unlink(missing_ok=True)  # already gone once placed


def output_in_place(folder: FolderConfig, job: Job | None) -> bool:
    """Return True if ``job``'s recorded output is still there with its recorded size.

    Checked right before a source is deleted or moved: an output that vanished (a share that was
    swapped, a consumer that moved it early) must not license losing the source.
    """
    if job is None or not job.output_rel:
        return False
    try:
        st = os.lstat(folder.output / job.output_rel)
    except OSError:
        return False
    return stat_mod.S_ISREG(st.st_mode) and st.st_size == job.output_size


def find_published(job: Job, folder: FolderConfig) -> str | None:
    """Return the output a previous attempt published but did not record, if there is one.

    Looks at the planned name and its collision variants (``-1``, ``-2``...) for a file with the
    recorded size and SHA-256 of the verified output.
    """
    if job.outcome is not None or not job.output_rel or not job.output_sha256:
        return None
    for candidate in candidate_names(folder.output / job.output_rel):
        try:
            os.lstat(candidate)  # the first free name ends the search; a share error propagates
        except FileNotFoundError:
            return None
        if is_recorded_file(candidate, job.output_size, job.output_sha256):
            return candidate.relative_to(folder.output).as_posix()
    return None


def reuse(
    a: Attempt, sniffed: Sniffed, record: Recorder, guard: MountGuard, mode: int, progress: Progress
) -> Outcome | None:
    """Give a file whose content this folder already anonymized its own output without a rerun.

    Every input must end with an output at its own path: the same bytes under a new name, or
    dropped again after the user deleted the output, are not simply marked as duplicates. An
    earlier output is reused when it is still in place with its recorded size and SHA-256: it is
    either already at this file's own output path (dropped again, output kept) or it is copied
    there (the copy checked against the hash too). The journal forgets an earlier job's output
    name once that job is retired; such an output is found by the HMAC of its name
    (``find_output_rel``, anywhere in the output folder). Return DUPLICATE, or None when nothing
    is reusable: the caller then runs the engine.
    """
    job, folder = a.job, a.folder
    final = folder.output / job.rel_path
    final = final.with_name(output_name(final.name, expected_suffixes(sniffed.format), sniffed.suffix))
    final_rel = final.relative_to(folder.output).as_posix()
    own: tuple[str, int] | None = None  # (sha, size) of what already sits at this file's output path
    try:
        st = os.lstat(final)
        if stat_mod.S_ISREG(st.st_mode):
            own = ("", st.st_size)
    except OSError:
        pass
    for earlier in record.journal.find_reusable_results(job.job_key or "", folder.name, exclude=job.id):
        assert earlier.output_sha256 is not None
        summary = {k: v for k, v in earlier.summary.items() if k in REUSED_SUMMARY_KEYS}
        # The job that anonymized this content, also when the earlier job was a reuse itself;
        # kept with the pending output so that a crash before recording still says "copy".
        summary["copy_of"] = earlier.duplicate_of or earlier.id
        if own is not None and own[1] == earlier.output_size:
            if not own[0]:
                own = (sha256_file(final, follow_symlinks=False, every_64_mib=progress)[0], own[1])
            if own[0] == earlier.output_sha256:
                # Dropped again, and its earlier output is still in place.
                return _reused(a, record, earlier, final_rel, summary)
        earlier_rel = find_output_rel(earlier, folder.output, record.hmac_key, every_1000=progress)
        if earlier_rel is None or earlier_rel == final_rel:
            continue
        try:
            earlier_out = resolve_inside(folder.output, earlier_rel)
        except OSError:
            continue
        if not is_recorded_file(earlier_out, earlier.output_size, earlier.output_sha256, progress):
            continue
        sha, size = earlier.output_sha256, earlier.output_size

        def before_place(summary: dict[str, Any] = summary, sha: str = sha, size: int | None = size) -> None:
            record.journal.set_pending_output(job.id, final_rel, sha, size, summary)
            guard.require(folder.output)

        published = copy_verify_publish(
            earlier_out,
            final,
            job.id,
            sha,
            size,
            mode,
            mismatch="the copy of the earlier output does not match its recorded SHA-256",
            progress=progress,
            before_place=before_place,
        )
        return _reused(a, record, earlier, published.relative_to(folder.output).as_posix(), summary)
    return None


def _reused(a: Attempt, record: Recorder, earlier: Job, output_rel: str, summary: dict[str, Any]) -> Outcome:
    original = summary["copy_of"]
    a.log.info("job.output_reused", duplicate_of=original)
    result = Finished(
        Outcome.DUPLICATE, output_rel, earlier.output_sha256, earlier.output_size, summary, a.size, original
    )
    return record.done(a.job, a.folder, a.require_engine().models, a.started, a.log, result)
