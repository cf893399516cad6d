"""The job journal: every job from discovery to retirement, and the only writer of job rows.

States::

    queued ──claim──▶ running ──▶ done ──retention──▶ retired
       ▲                 │  ├──▶ review ──approve──▶ done   (profile review: required)
       │                 │  │
       └──retry(backoff)─┘  ├──▶ quarantined   (bad media, or retries exhausted)
                            └──▶ vanished      (source changed or disappeared before processing)

A job whose content was already anonymized under the same profile and models ends in ``done``
with ``outcome='duplicate'`` and waits for retention like any other.

The scanner thread and the main loop each open their own connection; WAL lets the scanner
insert while the main loop reads, and ``busy_timeout`` absorbs the short write transactions.
The journal lives on local disk (config refuses a network filesystem). The read-only queries
are ``JobReader``'s (``store.queries``); the file, pragmas and schema are ``store.db``'s.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from anonymizer.audit.log import AuditLog, load_or_create_key
from anonymizer.store.db import checkpoint, connect, transaction
from anonymizer.store.names import encode_rel, erase_names, fill_missing_hmacs
from anonymizer.store.queries import JobReader
from anonymizer.store.rows import RETENTION_HELD, FileStat, Job


def job_key(input_sha256: str, profile_sha256: str, model_sha256s: Iterable[str]) -> str:
    """Return the idempotency key: same bytes, same profile, same models -> same key."""
    blob = "\n".join([input_sha256, profile_sha256, *sorted(model_sha256s)])
    return hashlib.sha256(blob.encode()).hexdigest()




def new_job_id() -> str:
    """Return a short random job id; ids name jobs in logs instead of file names."""
    return "j-" + secrets.token_hex(6)


class Journal(JobReader):
    """SQLite job journal. One instance per thread; every method commits before returning."""

    def __init__(
        self, path: Path, *, clock: Any = time.time, readonly: bool = False, hmac_key: bytes | None = None
    ) -> None:
        """Open (or create) the journal at ``path``.

        Args:
            hmac_key: the audit's path key; by default the one in the journal's folder
                (``audit-hmac.key``, created on first use). A read-only journal needs none.
        """
        self.path = Path(path)
        self._clock = clock
        self._wal_has_names = False
        if not readonly and hmac_key is None:
            hmac_key = load_or_create_key(self.path.parent)
        super().__init__(connect(self.path, readonly=readonly), hmac_key=hmac_key)
        if not readonly:
            self._migrate_names()

    def close(self) -> None:
        self._db.close()

    def _migrate_names(self) -> None:
        """Bring a journal written by an older version up to the names policy, once.

        Rows without a path HMAC get one, names no longer needed are erased, and the file is
        rebuilt (VACUUM) once so that names freed before ``secure_delete`` was on are gone too.
        """
        fill_missing_hmacs(self._db, self._key)
        self.forget_names()
        if self.get_meta("names_wiped") is None:
            self._db.execute("VACUUM")
            self.set_meta("names_wiped", "1")
            self._wal_has_names = checkpoint(self._db)

    def forget_names(self) -> int:
        """Erase the file names of every job that no longer needs them; return how many.

        See ``names.NAMES_NOT_NEEDED`` for when that is. The row keeps ``path_hmac``, which is
        what the audit names the file by and what ``offer`` recognises a kept source by.
        """
        erased = erase_names(self._db)
        self.flush_names(force=bool(erased))
        return erased

    def flush_names(self, *, force: bool = False) -> None:
        """Cut the WAL if its older frames may still hold erased names (a reader blocked the last try)."""
        if force or self._wal_has_names:
            self._wal_has_names = checkpoint(self._db)

    def _update(self, job_id: str, **fields: Any) -> None:
        fields["updated_at"] = self._clock()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with transaction(self._db) as db:
            db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*fields.values(), job_id))

    def set_meta(self, key: str, value: str) -> None:
        with transaction(self._db) as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def due_for_retention(self, now: float | None = None) -> list[Job]:
        return super().due_for_retention(self._clock() if now is None else now)

    # ----------------------------------------------------------------- discovery

    def offer(self, folder: str, rel_path: str, stat: FileStat) -> str | None:
        """Record a complete file seen by the scanner. Return the new job id, or None if known.

        A file is known when a job exists for the same folder, path, size, mtime and inode (done,
        queued, running, quarantined...). A queued job for the same path with an older stat is
        updated in place rather than duplicated: the writer was still changing it.
        """
        return self.offer_many(folder, [(rel_path, stat)])[0]

    def offer_many(self, folder: str, files: list[tuple[str, FileStat]]) -> list[str | None]:
        """``offer`` for many files in one transaction (one fsync for a whole scan's findings)."""
        with transaction(self._db) as db:
            return [self._offer(db, folder, rel, st) for rel, st in files]

    def _offer(self, db: sqlite3.Connection, folder: str, rel_path: str, stat: FileStat) -> str | None:
        now = self._clock()
        hmac_ = self._path_hmac(folder, rel_path)
        rel_path = encode_rel(rel_path)
        rows = db.execute(
            # A retired job has no name any more, only its path HMAC (see ``forget_names``).
            "SELECT id, state, size, mtime_ns, inode FROM jobs WHERE folder = ? AND (rel_path = ? OR path_hmac = ?)"
            # Jobs whose file was deleted or moved away do not count: a new file may reuse the
            # inode, and a copy tool that preserves mtime would then look like the old version.
            " AND (state IN ('queued', 'running', 'review', 'done') OR (state = 'retired' AND retention = 'kept'))",
            (folder, rel_path, hmac_),
        ).fetchall()
        for r in rows:
            if (r["size"], r["mtime_ns"], r["inode"]) == (stat.size, stat.mtime_ns, stat.inode):
                return None
        for r in rows:
            if r["state"] == "queued":
                db.execute(
                    "UPDATE jobs SET size = ?, mtime_ns = ?, inode = ?, updated_at = ? WHERE id = ?",
                    (stat.size, stat.mtime_ns, stat.inode, now, r["id"]),
                )
                return None
        job_id = new_job_id()
        db.execute(
            "INSERT INTO jobs (id, folder, rel_path, path_hmac, size, mtime_ns, inode, state, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
            (job_id, folder, rel_path, hmac_, stat.size, stat.mtime_ns, stat.inode, now, now),
        )
        return job_id

    # ----------------------------------------------------------------- work queue

    def claim(self, folders: Iterable[str]) -> Job | None:
        """Move the oldest due queued job of one of ``folders`` to running and return it."""
        names = list(folders)
        if not names:
            return None
        now = self._clock()
        marks = ",".join("?" * len(names))
        with transaction(self._db) as db:
            row = db.execute(
                f"SELECT id FROM jobs WHERE state = 'queued' AND next_attempt_at <= ? AND folder IN ({marks})"
                " ORDER BY next_attempt_at, created_at LIMIT 1",
                (now, *names),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', started_at = ?, updated_at = ? WHERE id = ?",
                (now, now, row["id"]),
            )
        return self.get(row["id"])

    def recover_interrupted(self, keep: Iterable[str] = ()) -> list[Job]:
        """At start-up, return jobs left ``running`` by a crash to the queue and return them.

        The interruption counts as an attempt: a file that crashes the process every time (an
        out-of-memory kill on a hostile input) must end in quarantine, not in a restart loop.
        ``keep``: ids of jobs still running elsewhere (on a remote worker), left running.
        """
        kept = set(keep)
        jobs = [j for j in self.running() if j.id not in kept]
        for job in jobs:
            self._update(job.id, state="queued", attempts=job.attempts + 1, next_attempt_at=0.0)
        return [self.get(j.id) for j in jobs]  # type: ignore[misc]

    def requeue(self, job_id: str) -> None:
        """Put a running job back without counting an attempt (graceful stop interrupted it)."""
        self._update(job_id, state="queued", next_attempt_at=0.0)

    def retry_later(self, job_id: str, error: str, delay_s: float) -> int:
        """Count a failed attempt and queue the job again after ``delay_s``. Return the attempts."""
        job = self.get(job_id)
        assert job is not None
        attempts = job.attempts + 1
        self._update(job_id, state="queued", attempts=attempts, error=error, next_attempt_at=self._clock() + delay_s)
        return attempts

    def defer(self, job_id: str, reason: str, delay_s: float) -> None:
        """Queue the job again after ``delay_s`` without counting an attempt (a share is away)."""
        self._update(job_id, state="queued", error=reason, next_attempt_at=self._clock() + delay_s)

    def set_hash(self, job_id: str, input_sha256: str, key: str | None) -> None:
        self._update(job_id, input_sha256=input_sha256, job_key=key)

    def set_pending_output(
        self, job_id: str, output_rel: str, output_sha256: str, output_size: int, summary: dict[str, Any]
    ) -> None:
        """Record a verified output just before it is published under (a variant of) ``output_rel``.

        If the process dies between publishing and ``mark_done``, the restarted job finds the
        published file by this hash and adopts it instead of publishing a second copy.
        """
        self._update(
            job_id,
            output_rel=encode_rel(output_rel),
            output_sha256=output_sha256,
            output_size=output_size,
            summary_json=json.dumps(summary, sort_keys=True),
        )

    # ----------------------------------------------------------------- outcomes

    def mark_done(
        self,
        job_id: str,
        *,
        outcome: str,
        output_rel: str | None,
        output_sha256: str | None,
        output_size: int | None,
        summary: dict[str, Any],
        retain_after: float,
        duplicate_of: str | None = None,
    ) -> None:
        """Record a verified, published output (or a duplicate). Only after this may retention run."""
        row = self._db.execute("SELECT folder FROM jobs WHERE id = ?", (job_id,)).fetchone()
        self._update(
            job_id,
            state="done",
            outcome=outcome,
            output_rel=None if output_rel is None else encode_rel(output_rel),
            output_hmac=None if output_rel is None or row is None else self._path_hmac(row["folder"], output_rel),
            output_sha256=output_sha256,
            output_size=output_size,
            summary_json=json.dumps(summary, sort_keys=True),
            retain_after=retain_after,
            duplicate_of=duplicate_of,
            error=None,
        )

    def mark_audited(self, job_id: str) -> None:
        self._update(job_id, audited=1)
        self.forget_names()  # a quarantined job is settled once its audit line is written

    def mark_quarantined(self, job_id: str, reason: str) -> None:
        self._update(job_id, state="quarantined", outcome="quarantined", error=reason)

    def mark_quarantined_after(self, job_id: str, reason: str, attempts: int) -> None:
        """``mark_quarantined`` that also records how many attempts were made (status shows it)."""
        self._update(job_id, state="quarantined", outcome="quarantined", error=reason, attempts=attempts)

    def mark_vanished(self, job_id: str, reason: str) -> None:
        self._update(job_id, state="vanished", outcome="vanished", error=reason)
        self.forget_names()

    def mark_retired(self, job_id: str, action: str) -> None:
        self._update(job_id, state="retired", retention=action, retired_at=self._clock())
        self.forget_names()

    def postpone_retention(self, job_id: str, delay_s: float) -> None:
        """Try retention again later (the filesystem refused); keeps a failing share from spinning."""
        self._update(job_id, retain_after=self._clock() + delay_s)

    def retention_failed(self, job_id: str, reason: str, delay_s: float, max_attempts: int) -> int:
        """Count a failed retention try; retry after ``delay_s``, or hold the source for good.

        Return the number of failed tries. After ``max_attempts`` the job keeps state 'done' with
        ``retention = 'held'`` and is never due again: its source stays where it is, and
        ``retention_problems`` shows it with ``reason``.
        """
        job = self.get(job_id)
        assert job is not None
        attempts = job.retention_attempts + 1
        held: dict[str, Any] = {"retention": RETENTION_HELD, "retain_after": None}
        later = {"retain_after": self._clock() + delay_s}
        fields = held if attempts >= max_attempts else later
        self._update(job_id, retention_attempts=attempts, retention_error=reason, **fields)
        return attempts


# The meta key holding the audit chain's head as "<lines>:<sha256>" (``audit verify`` compares).
AUDIT_HEAD = "audit_head"


def append_audit(journal: Journal, audit: AuditLog, record: dict[str, Any]) -> None:
    """Append one audit line and keep the chain's head in the journal (both, or an OSError).

    The one place a line is written: the daemon's job records and the API's and buckets' events.
    """
    head, lines = audit.append(record)
    journal.set_meta(AUDIT_HEAD, f"{lines}:{head}")
