"""The checks before the engine call: the source is the journaled version, on the allow-list,
hashed and keyed; an output an interrupted attempt published is adopted, and an earlier output
of the same content is reused. Only when none of that ends the job does the engine run.

The order keeps evidence safe: stat == journaled stat, then SHA-256 (before the allow-list check,
so that a quarantined file is identified too), stat again, then the sniff, the job key (profile,
sidecar masks, models) and the look for an output to adopt or reuse.
"""

from __future__ import annotations

from collections.abc import Callable

from anonymizer.config import Profile
from anonymizer.daemon.job import publish, review
from anonymizer.daemon.job.attempt import OUTSIDE_INPUT, Attempt, Progress, file_stat, source_path
from anonymizer.daemon.job.record import Finished, Recorder
from anonymizer.daemon.job.shares import MountGuard
from anonymizer.durable import sha256_file, temp_output_for
from anonymizer.jobs.outcome import Outcome
from anonymizer.jobs.run import EngineLike
from anonymizer.media.sniff import sniff
from anonymizer.store import job_key


def prepare(
    a: Attempt,
    *,
    record: Recorder,
    guard: MountGuard,
    engine_for: Callable[[Profile], EngineLike],
    mode: int,
    progress: Progress,
) -> Outcome | None:
    """Run the source checks on attempt ``a``; return the outcome when the job ends here
    (vanished, duplicate, adopted...), or None after filling in ``a`` for the engine call.

    Raise what the per-job error handling classifies (``classify.guarded``): MediaError for an
    input off the allow-list or with an invalid sidecar, OSError for I/O, ShareUnavailable.
    """
    job, folder, log = a.job, a.folder, a.log
    src = source_path(folder, job)
    if src is None:
        return record.vanished(job, OUTSIDE_INPUT, log)
    if file_stat(src) != job.stat:
        return record.vanished(job, "source changed after it settled; it will be offered again", log)
    limits = folder.profile.limits
    if job.size <= limits.max_file_bytes:
        # Hash before the allow-list check so that a quarantined file is identified too.
        sha, size = sha256_file(src, follow_symlinks=False, every_64_mib=progress)
        if file_stat(src) != job.stat:
            return record.vanished(job, "source changed while it was hashed; it will be offered again", log)
        record.journal.set_hash(job.id, sha, None)
    sniffed = sniff(src, max_file_bytes=limits.max_file_bytes)
    engine = engine_for(folder.profile)
    # The operator's sidecars (and a reviewer's masks) change the output: part of the job key.
    a.masks = review.masks_for_job(record.journal, job, folder, src)
    key = job_key(
        sha, review.keyed_profile(folder.profile.sha256, a.masks), [str(m.get("sha256")) for m in engine.models]
    )
    record.journal.set_hash(job.id, sha, key)
    refreshed = record.journal.get(job.id)
    assert refreshed is not None  # a claimed job's row is never deleted while it runs
    job = a.job = refreshed
    log = a.log = log.bind(sha256=sha)
    log.info("job.started", kind=sniffed.kind, size=size, attempt=job.attempts + 1)
    a.engine, a.sniffed, a.kind, a.size = engine, sniffed, sniffed.kind, size

    adopted = publish.find_published(job, folder)
    if adopted is not None:
        log.warning("job.adopted_output", reason="published before an interruption, not yet recorded")
        copy_of = job.summary.get("copy_of")  # the interrupted job was copying an earlier output
        outcome = Outcome.DUPLICATE if copy_of else Outcome.ANONYMIZED
        result = Finished(outcome, adopted, job.output_sha256, job.output_size, job.summary, size, copy_of)
        return record.done(job, folder, engine.models, a.started, log, result)

    guard.require(folder.input, folder.output)
    reused = publish.reuse(a, sniffed, record, guard, mode, progress)
    if reused is not None:
        return reused

    a.src = src
    a.final = folder.output / job.rel_path
    a.final.parent.mkdir(parents=True, exist_ok=True)
    a.planned_tmp = temp_output_for(a.final, job.id, src.suffix)
    return None
