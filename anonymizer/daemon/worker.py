"""One job at a time: hash, anonymize into a temporary name, verify, publish, audit, retire.

The order is what keeps evidence safe::

    source stat == journaled stat ─▶ allow-list (magic bytes) ─▶ SHA-256 ─▶ duplicate?
      ─▶ run_job: engine.process(src, <output>/.anonymizer-tmp-<job><suffix>), which verifies
         the output (same kind, decodes fully, frame count) before naming it, and its SHA-256
      ─▶ fsync, SHA-256 == the verified one ─▶ link to its final name (never overwriting) + fsync folder
      ─▶ journal 'done' ─▶ audit line ─▶ journal 'audited' ─▶ retention when due

The engine call itself is ``anonymizer.jobs.run_job``, the part any worker runs: here in the
daemon's process (``run``), or on a Celery worker when the daemon has a broker (``begin``,
``prepare`` before the call, ``complete`` with what the worker returned; ``anonymizer.scaleout``).
Everything else above is the coordinator's, in both cases.

Errors are caught narrowly, once per job (borgmatic's pattern): a ``MediaError`` is the input's
fault and quarantines at once; ``OSError``/``JobError``/``ModelError`` may be transient and are
retried with backoff, then quarantined. Anything else is a bug and stops the process: systemd
restarts it and the journal counts the interrupted attempt.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anonymizer.audit.log import AuditLog, path_hmac
from anonymizer.audit.records import job_record, retention_record, utc_iso
from anonymizer.config import Profile
from anonymizer.daemon import review as review_hold
from anonymizer.daemon.config import FolderConfig, RetryPolicy, mount_of
from anonymizer.daemon.fsutil import find_by_name_hmac, set_output_mode, umask_file_mode
from anonymizer.daemon.journal import FileStat, Job, Journal, backoff_s, display_rel, job_key
from anonymizer.daemon.logging import describe_error
from anonymizer.daemon.metrics import Metrics
from anonymizer.daemon.quarantine import quarantine_file
from anonymizer.daemon.retention import apply_retention
from anonymizer.daemon.scanner import resolve_inside
from anonymizer.durable import (
    candidate_names,
    copy_new_file,
    fsync_file,
    place_no_overwrite,
    sha256_file,
    temp_output_for,
)
from anonymizer.errors import JobError, MediaError, ModelError
from anonymizer.jobs.run import EngineLike, JobOutput, run_job


class StopRequested(BaseException):
    """Raised from the progress callback to abandon a job on SIGTERM; the job is requeued.

    A BaseException so that an engine's ``except Exception`` cannot turn it into a MediaError
    (which would quarantine a perfectly good input).
    """


class ShareUnavailable(OSError):
    """A folder's share is not mounted where it was at start-up (its path now lies on the disk
    under the mount point). Nothing may be read, published or retired there until it returns;
    waiting for it does not count as a failed attempt."""


_PREPARED = "prepared"  # ``prepare``'s internal marker: no outcome yet, the engine must run


@dataclass
class Attempt:
    """One attempt at a claimed job, filled in as it goes: what the coordinator knows of it
    between the checks before the engine call and the verification after it."""

    job: Job
    folder: FolderConfig
    log: Any
    started: float  # monotonic
    src: Path = field(default=Path())
    final: Path = field(default=Path())
    planned_tmp: Path = field(default=Path())
    sniffed: Any = None
    kind: str = ""
    size: int = 0
    engine: Any = None
    tmp: Path | None = None  # written and not yet published: removed when the attempt ends
    masks: Any = None  # the operator's sidecar masks (anonymizer.daemon.review), or None


@dataclass
class Worker:
    """Runs claimed jobs. ``engine_for(profile)`` returns the warm engine for a folder's profile."""

    journal: Journal
    audit: AuditLog
    hmac_key: bytes
    engine_for: Callable[[Profile], EngineLike]
    retry: RetryPolicy
    log: Any
    metrics: Metrics | None = None
    should_stop: Callable[[], bool] = lambda: False
    heartbeat: Callable[[], None] = lambda: None
    report: Callable[[str, int, int], None] = lambda stage, done, total: None
    clock: Callable[[], float] = time.time
    # The daemon config's output_mode; None: what the umask gives a new file (umask_file_mode).
    output_mode: int | None = None
    _audit_head: tuple[str, int] | None = field(default=None, init=False)
    _last_progress: Any = field(default=None, init=False)
    _mounts: dict[Path, tuple[str, int, int]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._umask_mode = umask_file_mode()

    def publish(self, tmp: Path, final: Path) -> Path:
        """Give a complete, verified file its final name, with the one mode every published
        output gets (direct, reused or approved after review); return the name it got."""
        set_output_mode(tmp, self.output_mode if self.output_mode is not None else self._umask_mode)
        return place_no_overwrite(tmp, final)

    # ------------------------------------------------------------------ shares

    def note_mounts(self, folders: Iterable[FolderConfig]) -> None:
        """Remember which mount holds each folder (at start-up, and for folders added by a reload)."""
        for folder in folders:
            for path in self._folder_paths(folder):
                if path not in self._mounts:
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue  # created later (move_to); nothing to compare against
                    self._mounts[path] = (mount_of(path)[0], st.st_dev, st.st_ino)

    @staticmethod
    def _folder_paths(folder: FolderConfig) -> list[Path]:
        paths = [folder.input, folder.output, folder.quarantine]
        if folder.retention_move_to is not None:
            paths.append(folder.retention_move_to)
        return paths

    def _require_mounted(self, *paths: Path) -> None:
        """Raise ShareUnavailable if a folder's mount point has changed since start-up.

        When a share drops, its path resolves to the bare mount-point folder on the local disk:
        an output "published" there is hidden once the share returns, and a source retired on
        the strength of it would be lost. The same folder (device and inode), or a remount at the
        same mount point, is fine.
        """
        for path in paths:
            expected = self._mounts.get(path)
            if expected is None:
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                # Removed by someone (it is re-created) or gone with its share (it is not).
                if mount_of(path)[0] != expected[0]:
                    raise ShareUnavailable(errno.ENOTCONN, "the folder's share is not mounted") from None
                continue
            if (st.st_dev, st.st_ino) == expected[1:]:
                continue
            if mount_of(path)[0] != expected[0]:
                raise ShareUnavailable(errno.ENOTCONN, "the folder's share is not mounted")
            self._mounts[path] = (expected[0], st.st_dev, st.st_ino)  # remounted in place

    # ------------------------------------------------------------------ helpers

    def _ctx(self, job: Job, folder: FolderConfig) -> dict[str, Any]:
        ctx: dict[str, Any] = {"job_id": job.id, "folder": folder.name}
        if job.input_sha256:
            ctx["sha256"] = job.input_sha256
        if folder.profile.privacy.log_file_names:
            ctx["path"] = display_rel(job.rel_path)
        return ctx

    def _path_ref(self, job: Job, folder: FolderConfig) -> dict[str, str]:
        if folder.profile.privacy.log_file_names:
            return {"path": display_rel(job.rel_path)}
        return {"path_hmac": path_hmac(self.hmac_key, folder.name, job.rel_path)}

    def _progress(self, *args: Any, **kwargs: Any) -> None:
        # Called by the engine after every frame of a video and every inference pass, several
        # times a second while a video's stages work, and while hashing and copying. It is where
        # a SIGTERM turns into a requeue within seconds, whatever the job's size. Only a call
        # that says something advanced proves progress (the heartbeat feeds the systemd watchdog
        # only while such ticks keep coming): the calls a waiting pipeline makes repeat the
        # last values, so a stuck stage cannot keep the daemon looking alive.
        if len(args) == 3 and isinstance(args[0], str):
            self.report(*args)  # (stage, done, total): shown by `anonymizer status`
        seen = (args, tuple(sorted(kwargs.items())))
        if seen != self._last_progress or not args:
            self._last_progress = seen
            self.heartbeat()
        if self.should_stop():
            raise StopRequested()

    def _append_audit(self, record: dict[str, Any]) -> None:
        head, lines = self.audit.append(record)
        self.journal.set_meta("audit_head", f"{lines}:{head}")

    def _audit_job(self, job_id: str, record: dict[str, Any], log: Any) -> None:
        """Write a finished job's audit line, then mark it audited (which allows retention).

        An audit_dir that refuses the write must not send the job back to the retry path: its
        output is already published and recorded. The job stays unaudited, its source is not
        retired, and the main loop writes the line later (``write_missing_audit``).
        """
        try:
            self._append_audit(record)
        except OSError as exc:
            log.error("audit.write_failed", reason=exc.strerror or type(exc).__name__)
            if self.metrics is not None:
                self.metrics.failures.labels(record.get("folder", ""), "audit").inc()
            return
        self.journal.mark_audited(job_id)

    # ------------------------------------------------------------------ the job

    def run(self, job: Job, folder: FolderConfig) -> str:
        """Run one claimed job to an outcome; return it (anonymized, duplicate, quarantined,
        vanished, retry, requeued). Raise StopRequested only after requeueing the job."""
        attempt = self.begin(job, folder)
        if isinstance(attempt, str):
            return attempt
        return self._guarded(attempt, lambda: self._run_here(attempt))

    def _run_here(self, a: Attempt) -> str:
        # In this process: the same engine call a remote worker makes (anonymizer.jobs).
        outcome = self._prepare(a)
        if outcome is not None:
            return outcome
        a.tmp = a.planned_tmp
        return self._complete(a, run_job(a.engine, a.src, a.planned_tmp, progress=self._progress, masks=a.masks))

    # The coordinator's half of a job that a remote worker runs (anonymizer.scaleout): ``prepare``
    # before the engine call, ``complete`` with what the worker returned. Both go through the
    # same checks and error handling as ``run``.

    def begin(self, job: Job, folder: FolderConfig) -> Attempt | str:
        """Start a claimed job: an ``Attempt``, or the outcome when no attempt is left."""
        log = self.log.bind(**self._ctx(job, folder))
        if job.attempts >= self.retry.max_attempts:
            # The attempts were all made (interrupted ones are counted at restart): none now.
            reason = f"gave up after {job.attempts} attempts; last error: {job.error or 'process interrupted'}"
            return self._quarantine(job, folder, reason, "RetriesExhausted", log, attempts=job.attempts)
        return Attempt(job, folder, log, time.monotonic())

    def prepare(self, a: Attempt) -> str | None:
        """Run the checks before the engine call; return an outcome when the job ends there
        (vanished, duplicate, quarantined...) or None when the engine must run on ``a.src``."""
        result = self._guarded(a, lambda: self._prepare(a) or _PREPARED)
        return None if result == _PREPARED else result

    def complete(self, a: Attempt, output: JobOutput | BaseException) -> str:
        """Finish a prepared job with the remote worker's output (verify, publish, audit) or
        with the error it reported (classified as if the engine had raised it here).

        Jobs run side by side on several workers, so another job of the same content (same job
        key) may have finished meanwhile: then its output is reused and this one discarded.
        """

        def step() -> str:
            if isinstance(output, BaseException):
                raise output
            a.tmp = output.path
            reused = self._reuse_result(a.job, a.folder, a.engine, a.started, a.log, a.sniffed, a.size)
            if reused is not None:
                a.log.info("job.duplicate_result_discarded", reason="the same content finished first in another job")
                return reused
            return self._complete(a, output)

        return self._guarded(a, step)

    def give_up(self, a: Attempt, reason: str, error_type: str) -> str:
        """Quarantine a prepared job with ``reason`` (a remote worker died on it too often)."""
        return self._guarded(a, lambda: self._quarantine(a.job, a.folder, reason, error_type, a.log))

    def defer(self, a: Attempt, reason: str) -> str:
        """Queue a prepared job again later without counting an attempt: no worker could take it
        (its models differ from ours). The input is not at fault, so it is never quarantined."""
        delay = backoff_s(1, self.retry.base_s, self.retry.max_s)
        self.journal.defer(a.job.id, reason, delay)
        a.log.error("job.worker_refused", reason=reason, retry_in_s=round(delay, 1))
        return "deferred"

    def _guarded(self, a: Attempt, step: Callable[[], str]) -> str:
        """Run ``step`` with the per-job error handling: each expected error becomes an outcome."""
        job, folder = a.job, a.folder
        scrub_paths = [folder.input / job.rel_path, job.rel_path]
        try:
            return step()
        except StopRequested:
            self.journal.requeue(a.job.id)
            a.log.info("job.requeued", reason="stop requested")
            raise
        except ShareUnavailable as exc:
            delay = backoff_s(1, self.retry.base_s, self.retry.max_s)
            self.journal.defer(a.job.id, describe_error(exc, scrub_paths), delay)
            if self.metrics is not None:
                self.metrics.failures.labels(folder.name, "io").inc()
            a.log.warning("job.deferred", reason=exc.strerror, retry_in_s=round(delay, 1))
            return "deferred"
        except MediaError as exc:
            if not self._source_unchanged(folder, a.job):
                return self._vanish(a.job, "source changed or disappeared while it was processed", a.log)
            return self._quarantine(a.job, folder, describe_error(exc, scrub_paths), type(exc).__name__, a.log)
        except FileNotFoundError as exc:
            if not self._source_unchanged(folder, a.job):
                return self._vanish(a.job, "source disappeared before it was processed", a.log)
            return self._retry(a.job, folder, describe_error(exc, scrub_paths), "io", a.log)
        except (OSError, JobError, ModelError) as exc:
            kind = "io" if isinstance(exc, OSError) else "job"
            return self._retry(a.job, folder, describe_error(exc, scrub_paths), kind, a.log)
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

    def _prepare(self, a: Attempt) -> str | None:
        """Source checks, hashing, job key, adoption of an unrecorded output, reuse of an earlier
        one. Return the outcome if the job ends here; else fill in ``a`` for the engine call."""
        job, folder, log = a.job, a.folder, a.log
        try:
            src = resolve_inside(folder.input, job.rel_path)
        except FileNotFoundError:
            raise
        except OSError:
            # A folder on the path was swapped for a symlink since the scan: not ours to read.
            return self._vanish(job, "path no longer lies inside the input folder (symlink)", log)
        if self._stat(src) != job.stat:
            return self._vanish(job, "source changed after it settled; it will be offered again", log)
        from anonymizer.media.sniff import sniff

        limits = folder.profile.limits
        if job.size <= limits.max_file_bytes:
            # Hash before the allow-list check so that a quarantined file is identified too.
            sha, size = sha256_file(src, follow_symlinks=False, every_64_mib=self._progress)
            if self._stat(src) != job.stat:
                return self._vanish(job, "source changed while it was hashed; it will be offered again", log)
            self.journal.set_hash(job.id, sha, None)
        sniffed = sniff(src, max_file_bytes=limits.max_file_bytes)
        engine = self.engine_for(folder.profile)
        # The operator's sidecars (and a reviewer's masks) change the output: part of the job key.
        a.masks = review_hold.masks_for_job(self, job, folder, src)
        profile_key = review_hold.keyed_profile(folder.profile.sha256, a.masks)
        key = job_key(sha, profile_key, [str(m.get("sha256")) for m in engine.models])
        self.journal.set_hash(job.id, sha, key)
        job = a.job = self.journal.get(job.id)  # type: ignore[assignment]
        log = a.log = log.bind(sha256=sha)
        log.info("job.started", kind=sniffed.kind, size=size, attempt=job.attempts + 1)

        adopted = self._find_published(job, folder)
        if adopted is not None:
            log.warning("job.adopted_output", reason="published before an interruption, not yet recorded")
            copy_of = job.summary.get("copy_of")  # the interrupted job was copying an earlier output
            return self._finish(
                job,
                folder,
                engine,
                a.started,
                log,
                outcome="duplicate" if copy_of else "anonymized",
                duplicate_of=copy_of,
                output_rel=adopted,
                output_sha256=job.output_sha256,
                output_size=job.output_size,
                summary=job.summary,
                input_size=size,
            )

        self._require_mounted(folder.input, folder.output)
        reused = self._reuse_result(job, folder, engine, a.started, log, sniffed, size)
        if reused is not None:
            return reused

        a.src, a.engine, a.sniffed, a.kind, a.size = src, engine, sniffed, sniffed.kind, size
        a.final = folder.output / job.rel_path
        a.final.parent.mkdir(parents=True, exist_ok=True)
        a.planned_tmp = temp_output_for(a.final, job.id, src.suffix)
        return None

    def _complete(self, a: Attempt, output: JobOutput) -> str:
        """Verify the engine's output at ``output.path``, publish it, record and audit the job."""
        job, folder, log = a.job, a.folder, a.log
        tmp, final = output.path, a.final
        if output.extra_suffix:
            # The engine appends the right suffix when the name does not fit the content
            # (an MP4 called .avi); the published name gets the same suffix.
            final = final.with_name(final.name + output.extra_suffix)
        summary = dict(output.summary)
        summary.setdefault("timings", {})
        if a.masks is not None and "manual" not in summary:
            # A worker that did not apply the sidecar (a remote one) made an output without the
            # operator's masks: never publish it.
            raise JobError("the output was made without the job's sidecar masks")
        if not self._source_unchanged(folder, job):
            # The writer touched the file after it settled: what was anonymized may not be
            # what was hashed. Drop the output (finally) and let the scanner offer it again.
            return self._vanish(job, "source changed while it was processed; it will be offered again", log)

        out_sha, out_size = self._check_verified(tmp, output)
        summary["timings"] = {**summary["timings"], "engine_s": round(output.engine_s, 3)}
        self.journal.set_pending_output(job.id, final.relative_to(folder.output).as_posix(), out_sha, out_size, summary)
        if folder.profile.review == "required":
            return review_hold.hold_output(self, a, tmp, final, summary, out_sha, out_size)
        self._require_mounted(folder.output)
        published = self.publish(tmp, final)
        a.tmp = None
        return self._finish(
            job,
            folder,
            a.engine,
            a.started,
            log,
            outcome="anonymized",
            output_rel=published.relative_to(folder.output).as_posix(),
            output_sha256=out_sha,
            output_size=out_size,
            summary=summary,
            input_size=a.size,
        )

    @staticmethod
    def _output_in_place(folder: FolderConfig, job: Job | None) -> bool:
        """Return True if ``job``'s recorded output is still there with its recorded size.

        Checked right before a source is deleted or moved: an output that vanished (a share
        that was swapped, a consumer that moved it early) must not license losing the source.
        """
        if job is None or not job.output_rel:
            return False
        try:
            st = os.lstat(folder.output / job.output_rel)
        except OSError:
            return False
        return stat_mod.S_ISREG(st.st_mode) and st.st_size == job.output_size

    @staticmethod
    def _find_published(job: Job, folder: FolderConfig) -> str | None:
        """Return the output a previous attempt published but did not record, if there is one.

        Looks at the planned name and its collision variants (``-1``, ``-2``...) for a file with
        the recorded size and SHA-256 of the verified output.
        """
        if job.outcome is not None or not job.output_rel or not job.output_sha256:
            return None
        for candidate in candidate_names(folder.output / job.output_rel):
            try:
                st = os.lstat(candidate)
            except FileNotFoundError:
                return None
            same_size = stat_mod.S_ISREG(st.st_mode) and st.st_size == job.output_size
            if same_size and sha256_file(candidate, follow_symlinks=False)[0] == job.output_sha256:
                return candidate.relative_to(folder.output).as_posix()
        return None

    @staticmethod
    def _stat(path: Path) -> FileStat:
        st = os.lstat(path)
        if not stat_mod.S_ISREG(st.st_mode):
            raise MediaError("input is not a regular file")
        return FileStat(st.st_size, st.st_mtime_ns, st.st_ino)

    def _source_unchanged(self, folder: FolderConfig, job: Job) -> bool:
        try:
            return self._stat(resolve_inside(folder.input, job.rel_path)) == job.stat
        except (OSError, MediaError):
            return False

    def _check_verified(self, tmp: Path, output: JobOutput) -> tuple[str, int]:
        """Make the output durable here and return (sha, size) if it is the file the engine
        verified; raise JobError (retried: the input may be fine) if it is not.

        The engine verified it (anonymizer.media.verify) wherever it ran, this process or a
        remote worker; decoding it again here would double the coordinator's cost per job. A
        file changed since (truncated on the share, rewritten by a worker presumed dead) has
        another SHA-256 and is never published.
        """
        fsync_file(tmp)
        out_sha, out_size = sha256_file(tmp, follow_symlinks=False, every_64_mib=self._progress)
        if (out_sha, out_size) != (output.sha256, output.size):
            raise JobError(
                f"output failed verification: {out_size} bytes with SHA-256 {out_sha[:16]}, not the "
                f"{output.size} bytes ({output.sha256[:16]}) the engine verified"
            )
        return out_sha, out_size

    # ------------------------------------------------------------------ outcomes

    def _finish(
        self,
        job: Job,
        folder: FolderConfig,
        engine: EngineLike,
        started: float,
        log: Any,
        *,
        outcome: str,
        output_rel: str | None,
        output_sha256: str | None,
        output_size: int | None,
        summary: dict[str, Any],
        input_size: int,
        duplicate_of: str | None = None,
    ) -> str:
        now = self.clock()
        policy = folder.profile.retention
        retain_after = now + policy.after_s
        self.journal.mark_done(
            job.id,
            outcome=outcome,
            output_rel=output_rel,
            output_sha256=output_sha256,
            output_size=output_size,
            summary=summary,
            retain_after=retain_after,
            duplicate_of=duplicate_of,
        )
        record = job_record(
            job_id=job.id,
            folder=folder.name,
            path_ref=self._path_ref(job, folder),
            outcome=outcome,
            time_s=now,
            input_sha256=job.input_sha256,
            input_size=input_size,
            output_sha256=output_sha256,
            output_size=output_size,
            duplicate_of=duplicate_of,
            summary=summary,
            profile_sha256=folder.profile.sha256,
            models=list(engine.models),
            retention={"policy": policy.source, "after_s": policy.after_s, "due": utc_iso(retain_after)},
            attempts=job.attempts + 1,
        )
        self._audit_job(job.id, record, log)
        seconds = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.record_success(folder.name, outcome, seconds, summary)
        log.info(
            "job.done",
            outcome=outcome,
            output_sha256=output_sha256,
            counts=summary.get("counts"),
            frames=summary.get("frames"),
            seconds=round(seconds, 3),
            duplicate_of=duplicate_of,
        )
        return outcome

    def _reuse_result(
        self, job: Job, folder: FolderConfig, engine: EngineLike, started: float, log: Any, sniffed: Any, size: int
    ) -> str | None:
        """Give a file whose content this folder already anonymized its own output without a rerun.

        Every input must end with an output at its own path: the same bytes under a new name, or
        dropped again after the user deleted the output, are not simply marked as duplicates.
        An earlier output is reused when it is still in place with its recorded size and SHA-256:
        it is either already at this file's own output path (dropped again, output kept) or it is
        copied there (the copy checked against the hash too). The journal forgets an earlier job's
        output name once that job is retired; such an output is found by the HMAC of its name
        (``find_by_name_hmac``). Return the outcome ('duplicate'), or None when nothing is reusable: the caller
        then runs the engine again.
        """
        from anonymizer.media.sniff import expected_suffixes

        final = folder.output / job.rel_path
        if final.suffix.lower() not in expected_suffixes(sniffed.format):
            final = final.with_name(final.name + sniffed.suffix)  # the engine's rule (pipeline.py)
        final_rel = final.relative_to(folder.output).as_posix()
        own: tuple[str, int] | None = None  # (sha, size) of what already sits at this file's output path
        try:
            st = os.lstat(final)
            if stat_mod.S_ISREG(st.st_mode):
                own = ("", st.st_size)
        except OSError:
            pass
        for earlier in self.journal.find_reusable_results(job.job_key or "", folder.name, exclude=job.id):
            assert earlier.output_sha256 is not None
            summary = {k: v for k, v in earlier.summary.items() if k in ("kind", "counts", "frames", "duration_s")}
            # The job that anonymized this content, also when the earlier job was a reuse itself;
            # kept with the pending output so that a crash before recording still says "copy".
            summary["copy_of"] = earlier.duplicate_of or earlier.id
            if own is not None and own[1] == earlier.output_size:
                if not own[0]:
                    own = (sha256_file(final, follow_symlinks=False, every_64_mib=self._progress)[0], own[1])
                if own[0] == earlier.output_sha256:
                    output_rel = final_rel  # dropped again, and its earlier output is still in place
                    return self._finish_reuse(job, folder, engine, started, log, earlier, output_rel, summary, size)
            earlier_rel = earlier.output_rel
            if earlier_rel is None and earlier.output_hmac:
                # Retired: the journal erased the output's name and kept its HMAC (journal.py).
                earlier_rel = find_by_name_hmac(
                    folder.output,
                    lambda rel: path_hmac(self.hmac_key, folder.name, rel),
                    earlier.output_hmac,
                    every_1000=self._progress,
                )
            if earlier_rel is None or earlier_rel == final_rel:
                continue
            try:
                earlier_out = resolve_inside(folder.output, earlier_rel)
            except OSError:
                continue
            if not self._is_recorded_file(earlier_out, earlier.output_size, earlier.output_sha256):
                continue
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_output_for(final, job.id, final.suffix)
            try:
                copy_new_file(earlier_out, tmp, progress=self._progress)
                out_sha, out_size = sha256_file(tmp, follow_symlinks=False, every_64_mib=self._progress)
                if (out_sha, out_size) != (earlier.output_sha256, earlier.output_size):
                    raise JobError("the copy of the earlier output does not match its recorded SHA-256")
                self.journal.set_pending_output(job.id, final_rel, out_sha, out_size, summary)
                self._require_mounted(folder.output)
                output_rel = self.publish(tmp, final).relative_to(folder.output).as_posix()
            finally:
                tmp.unlink(missing_ok=True)  # already gone once placed
            return self._finish_reuse(job, folder, engine, started, log, earlier, output_rel, summary, size)
        return None

    def _finish_reuse(
        self,
        job: Job,
        folder: FolderConfig,
        engine: EngineLike,
        started: float,
        log: Any,
        earlier: Job,
        output_rel: str,
        summary: dict[str, Any],
        input_size: int,
    ) -> str:
        original = summary["copy_of"]
        log.info("job.output_reused", duplicate_of=original)
        return self._finish(
            job,
            folder,
            engine,
            started,
            log,
            outcome="duplicate",
            output_rel=output_rel,
            output_sha256=earlier.output_sha256,
            output_size=earlier.output_size,
            summary=summary,
            input_size=input_size,
            duplicate_of=original,
        )

    def _is_recorded_file(self, path: Path, size: int | None, sha256: str) -> bool:
        """Return True if ``path`` is a regular file with the recorded size and SHA-256."""
        try:
            st = os.lstat(path)
            if not stat_mod.S_ISREG(st.st_mode) or st.st_size != size:
                return False
            return sha256_file(path, follow_symlinks=False, every_64_mib=self._progress)[0] == sha256
        except OSError:
            return False

    def _vanish(self, job: Job, reason: str, log: Any) -> str:
        self.journal.mark_vanished(job.id, reason)
        if self.metrics is not None:
            self.metrics.jobs.labels(job.folder, "vanished").inc()
        log.info("job.vanished", reason=reason)
        return "vanished"

    def _retry(self, job: Job, folder: FolderConfig, reason: str, kind: str, log: Any) -> str:
        if self.metrics is not None:
            self.metrics.failures.labels(folder.name, kind).inc()
        if job.attempts + 1 >= self.retry.max_attempts:
            return self._quarantine(
                job, folder, f"gave up after {job.attempts + 1} attempts; last error: {reason}", "RetriesExhausted", log
            )
        delay = backoff_s(job.attempts + 1, self.retry.base_s, self.retry.max_s)
        attempts = self.journal.retry_later(job.id, reason, delay)
        log.warning("job.retry", reason=reason, attempt=attempts, retry_in_s=round(delay, 1))
        return "retry"

    def _quarantine(
        self, job: Job, folder: FolderConfig, reason: str, error_type: str, log: Any, *, attempts: int | None = None
    ) -> str:
        """Move the source to quarantine with its reason. ``attempts``: how many were made in all
        (default: the journal's count plus this run's attempt)."""
        job = self.journal.get(job.id) or job
        attempts = job.attempts + 1 if attempts is None else attempts
        try:
            try:
                src = resolve_inside(folder.input, job.rel_path)
            except FileNotFoundError:
                raise
            except OSError:
                return self._vanish(job, "path no longer lies inside the input folder (symlink)", log)
            self._require_mounted(folder.input, folder.quarantine)
            quarantine_file(
                src,
                folder.quarantine,
                job.rel_path,
                reason=reason,
                job_id=job.id,
                input_sha256=job.input_sha256,
                error_type=error_type,
                now=self.clock(),
            )
        except FileNotFoundError:
            return self._vanish(job, "source disappeared before it could be quarantined", log)
        except ShareUnavailable as exc:
            delay = backoff_s(1, self.retry.base_s, self.retry.max_s)
            self.journal.defer(job.id, f"{reason}; quarantine waits: {exc.strerror}", delay)
            log.warning("job.deferred", reason=exc.strerror, retry_in_s=round(delay, 1))
            return "deferred"
        except OSError as exc:
            # Could not move it aside: leave it where it is, try again later; never delete.
            delay = backoff_s(job.attempts + 1, self.retry.base_s, self.retry.max_s)
            self.journal.retry_later(
                job.id, f"{reason}; quarantine failed: {exc.strerror or type(exc).__name__}", delay
            )
            log.error("job.quarantine_failed", reason=exc.strerror or type(exc).__name__, retry_in_s=round(delay, 1))
            return "retry"
        self.journal.mark_quarantined_after(job.id, reason, attempts)
        record = job_record(
            job_id=job.id,
            folder=folder.name,
            path_ref=self._path_ref(job, folder),
            outcome="quarantined",
            time_s=self.clock(),
            input_sha256=job.input_sha256,
            input_size=job.size,
            profile_sha256=folder.profile.sha256,
            reason=reason,
            attempts=attempts,
        )
        self._audit_job(job.id, record, log)
        if self.metrics is not None:
            self.metrics.jobs.labels(folder.name, "quarantined").inc()
            if error_type != "RetriesExhausted":
                self.metrics.failures.labels(folder.name, "media").inc()
        log.warning("job.quarantined", reason=reason)
        return "quarantined"

    # ------------------------------------------------------------------ retention

    def retire_due(self, folders: dict[str, FolderConfig]) -> int:
        """Apply retention to every recorded job whose delay has passed. Return how many.

        Each job, duplicates included, has its own recorded output; the source is deleted or
        moved only while that output is still in place. A try that fails is retried with backoff
        up to ``retry.max_attempts`` times; then the source is held (left in place for good, shown
        by ``anonymizer status`` and the metrics). A share that is away does not count as a try.
        """
        review_hold.apply_decisions(self, folders)  # an approval makes its job due (review: required)
        done = 0
        for job in self.journal.due_for_retention(self.clock()):
            folder = folders.get(job.folder)
            if folder is None:
                continue  # folder removed from the config: leave its sources alone
            log = self.log.bind(**self._ctx(job, folder))
            verified = bool(job.output_sha256) and bool(job.output_rel)
            try:
                if folder.profile.retention.source != "keep":
                    self._require_mounted(*self._folder_paths(folder))
                    if verified and not self._output_in_place(folder, job):
                        raise OSError(errno.ENOENT, "the recorded output is not in the output folder")
                result = apply_retention(job, folder, original_verified=verified)
            except ShareUnavailable as exc:
                delay = backoff_s(1, self.retry.base_s, self.retry.max_s)
                self.journal.postpone_retention(job.id, delay)
                log.warning("retention.deferred", reason=exc.strerror, retry_in_s=round(delay, 1))
                continue
            except OSError as exc:
                self._retention_failed(job, folder, exc.strerror or type(exc).__name__, log)
                continue
            now = self.clock()
            self.journal.mark_retired(job.id, result.action)
            if result.action != "kept":
                try:
                    self._append_audit(
                        retention_record(job_id=job.id, action=result.action, time_s=now, detail=result.detail)
                    )
                except OSError as exc:
                    # The action happened and the journal has it; only the line is missing.
                    log.error("audit.write_failed", reason=exc.strerror or type(exc).__name__, action=result.action)
            if self.metrics is not None:
                self.metrics.retention.labels(folder.name, result.action).inc()
            log.info("retention.applied", action=result.action)
            done += 1
            self.heartbeat()
        return done

    def _retention_failed(self, job: Job, folder: FolderConfig, reason: str, log: Any) -> None:
        delay = backoff_s(job.retention_attempts + 1, self.retry.base_s, self.retry.max_s)
        attempts = self.journal.retention_failed(job.id, reason, delay, self.retry.max_attempts)
        if self.metrics is not None:
            self.metrics.retention_failures.labels(folder.name).inc()
        if attempts >= self.retry.max_attempts:
            log.error("retention.held", reason=reason, attempts=attempts, source="left in place")
        else:
            log.warning("retention.failed", reason=reason, attempt=attempts, retry_in_s=round(delay, 1))

    def write_missing_audit(self, folders: dict[str, FolderConfig]) -> int:
        """After a crash: write the audit line of finished jobs that were recorded but not audited."""
        pending = self.journal.unaudited()
        if not pending:
            return 0
        already = self.audit.job_ids()
        for job in pending:
            if job.id not in already:
                folder = folders.get(job.folder)
                path_ref = (
                    {"path": display_rel(job.rel_path)}
                    if folder is not None and folder.profile.privacy.log_file_names
                    else {"path_hmac": path_hmac(self.hmac_key, job.folder, job.rel_path)}
                )
                summary = job.summary
                self._append_audit(
                    job_record(
                        job_id=job.id,
                        folder=job.folder,
                        path_ref=path_ref,
                        outcome=job.outcome or job.state,
                        time_s=job.updated_at,
                        input_sha256=job.input_sha256,
                        input_size=job.size,
                        output_sha256=job.output_sha256,
                        output_size=job.output_size,
                        duplicate_of=job.duplicate_of,
                        summary=summary,
                        reason=job.error if job.state == "quarantined" else None,
                        # A quarantined job's count includes its last attempt; a finished
                        # job's counts only the failed ones before it.
                        attempts=job.attempts if job.state == "quarantined" else job.attempts + 1,
                    )
                )
            self.journal.mark_audited(job.id)
        return len(pending)
