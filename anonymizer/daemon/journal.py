"""The job journal: SQLite (WAL, synchronous=FULL) holding every job from discovery to retirement.

States::

    queued ──claim──▶ running ──▶ done ──retention──▶ retired
       ▲                 │  ├──▶ review ──approve──▶ done   (profile review: required)
       │                 │  │
       └──retry(backoff)─┘  ├──▶ quarantined   (bad media, or retries exhausted)
                            └──▶ vanished      (source changed or disappeared before processing)

A job whose content was already anonymized under the same profile and models ends in ``done``
with ``outcome='duplicate'`` and waits for retention like any other.

The scanner thread and the main loop each open their own connection; WAL lets the scanner
insert while the worker reads, and ``busy_timeout`` absorbs the short write transactions.
The journal lives on local disk (config refuses a network filesystem).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

# 'review': a verified output held for review (profile review: required, anonymizer.review.hold);
# never claimed, never due for retention, until a decision makes it 'done' (or queued again).
STATES = ("queued", "running", "review", "done", "retired", "quarantined", "vanished")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id              TEXT PRIMARY KEY,
    folder          TEXT NOT NULL,
    rel_path        TEXT NOT NULL,
    size            INTEGER NOT NULL,
    mtime_ns        INTEGER NOT NULL,
    inode           INTEGER NOT NULL,
    state           TEXT NOT NULL,
    outcome         TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    input_sha256    TEXT,
    job_key         TEXT,
    duplicate_of    TEXT,
    output_rel      TEXT,
    output_sha256   TEXT,
    output_size     INTEGER,
    summary_json    TEXT,
    error           TEXT,
    audited         INTEGER NOT NULL DEFAULT 0,
    retain_after    REAL,
    retention       TEXT,
    retired_at      REAL,
    created_at      REAL NOT NULL,
    started_at      REAL,
    updated_at      REAL NOT NULL,
    retention_attempts INTEGER NOT NULL DEFAULT 0,
    retention_error TEXT,
    path_hmac       TEXT,
    output_hmac     TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_file ON jobs(folder, rel_path);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs(job_key);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Columns added after the first release: (name, declaration). A journal created before them gets
# them with ALTER TABLE at open (``_add_missing_columns``); CREATE TABLE above has them already.
_ADDED_COLUMNS = (
    # Failed retention tries of a finished job (the recorded output missing, the filesystem
    # refusing): bounded, so a source that cannot be retired reaches a final, visible state.
    ("retention_attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("retention_error", "TEXT"),
    # HMAC-SHA256 of "<folder>/<rel_path>" with the audit's path key (``audit.log.path_hmac``):
    # what identifies the file once its job is retired and the name columns are erased.
    ("path_hmac", "TEXT"),
    # The same HMAC of "<folder>/<output_rel>": how an earlier output is found again (by walking
    # the output folder's names) once its job is retired and ``output_rel`` is erased.
    ("output_hmac", "TEXT"),
)

# Created after ``_add_missing_columns`` because they index added columns. ``jobs_named`` holds
# the few rows that still carry a name and ``jobs_by_duplicate_of`` finds a job's duplicates, so
# erasing names never scans the whole (ever-growing) table.
_ADDED_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_path_hmac ON jobs(folder, path_hmac);
CREATE INDEX IF NOT EXISTS jobs_named ON jobs(state) WHERE rel_path != '';
CREATE INDEX IF NOT EXISTS jobs_by_duplicate_of ON jobs(duplicate_of) WHERE duplicate_of IS NOT NULL;
"""

# A job whose names are no longer needed ("retired" for privacy): nothing will read or move its
# file again, and its audit line is written.
#   - retired: retention settled (kept, deleted, moved, source-gone, source-changed) and audited;
#   - quarantined: the file was moved to quarantine (which keeps its name) and audited;
#   - vanished: the file changed or went away before processing; it gets a new job if it returns;
#   - and no unfinished duplicate points at it (a duplicate's retention checks its original's
#     recorded output in place).
# Such a row keeps its path HMAC, hashes, sizes, outcome and times; ``rel_path`` becomes '' (never
# a real relative path) and ``output_rel`` NULL. A 'done' job (retention pending or held) keeps its
# names: its source and output are still handled by name.
_NAMES_NOT_NEEDED = """
    rel_path != '' AND path_hmac IS NOT NULL
    AND ((state IN ('retired', 'quarantined') AND audited = 1) OR state = 'vanished')
    AND NOT EXISTS (
        SELECT 1 FROM jobs AS dup WHERE dup.duplicate_of = jobs.id
        AND dup.state NOT IN ('retired', 'quarantined', 'vanished')
    )
"""

# ``retention`` of a finished job whose retention gave up: the source stays in the input folder
# (state stays 'done', never due again) until an operator deals with it.
RETENTION_HELD = "held"


@dataclass(frozen=True)
class FileStat:
    """What identifies one version of a file on a share: size, mtime and inode."""

    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class Job:
    """One row of the journal, read-only; change it through ``Journal`` methods."""

    id: str
    folder: str
    rel_path: str
    size: int
    mtime_ns: int
    inode: int
    state: str
    outcome: str | None
    attempts: int
    next_attempt_at: float
    input_sha256: str | None
    job_key: str | None
    duplicate_of: str | None
    output_rel: str | None
    output_sha256: str | None
    output_size: int | None
    summary_json: str | None
    error: str | None
    audited: int
    retain_after: float | None
    retention: str | None
    retired_at: float | None
    created_at: float
    started_at: float | None
    updated_at: float
    retention_attempts: int = 0
    retention_error: str | None = None
    path_hmac: str | None = None
    output_hmac: str | None = None

    @property
    def stat(self) -> FileStat:
        return FileStat(self.size, self.mtime_ns, self.inode)

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.summary_json) if self.summary_json else {}


# Names on a share need not be valid UTF-8; Python hands them over with surrogate escapes, which
# SQLite cannot store as TEXT. Such a name is stored as this prefix + base64 of its raw bytes: NUL
# never occurs in a real file name, so the two forms cannot be confused.
_RAW_PREFIX = "\x00b64:"


def encode_rel(rel_path: str) -> str:
    """Return ``rel_path`` as storable TEXT (unchanged when it is valid UTF-8)."""
    try:
        rel_path.encode("utf-8")
        return rel_path
    except UnicodeEncodeError:
        return _RAW_PREFIX + base64.b64encode(rel_path.encode("utf-8", "surrogateescape")).decode("ascii")


def decode_rel(stored: str) -> str:
    """Inverse of ``encode_rel``: the name as ``os`` functions expect it."""
    if stored.startswith(_RAW_PREFIX):
        return base64.b64decode(stored[len(_RAW_PREFIX) :]).decode("utf-8", "surrogateescape")
    return stored


def display_rel(rel_path: str) -> str:
    """Return a printable form of a name for opted-in logs (undecodable bytes as \\xNN)."""
    return rel_path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def job_key(input_sha256: str, profile_sha256: str, model_sha256s: Iterable[str]) -> str:
    """Return the idempotency key: same bytes, same profile, same models -> same key."""
    blob = "\n".join([input_sha256, profile_sha256, *sorted(model_sha256s)])
    return hashlib.sha256(blob.encode()).hexdigest()


def backoff_s(attempts: int, base_s: float, max_s: float, *, rng: random.Random | None = None) -> float:
    """Return the delay before retry number ``attempts`` (1-based): exponential, capped, jittered.

    The jitter (x0.5 .. x1.5) keeps many jobs that failed together (a share went away) from
    retrying in lock-step.
    """
    rng = rng or random
    delay = min(max_s, base_s * 2 ** max(0, attempts - 1))
    return delay * rng.uniform(0.5, 1.5)


def new_job_id() -> str:
    """Return a short random job id; ids name jobs in logs instead of file names."""
    return "j-" + secrets.token_hex(6)


class Journal:
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
        self._key = hmac_key
        self._wal_has_names = False
        if readonly:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        else:
            from anonymizer.audit.log import load_or_create_key
            from anonymizer.daemon.fsutil import make_private_dir, make_private_file

            make_private_dir(self.path.parent)
            # SQLite creates its file 0644 (less the umask) and gives -wal/-shm the mode of the
            # database file, so creating the database 0600 first keeps all three private.
            make_private_file(self.path)
            for extra in (Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                if extra.exists():
                    make_private_file(extra)  # left wider by an older version
            if self._key is None:
                self._key = load_or_create_key(self.path.parent)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 30000")
        if not readonly:
            # Erased names must not survive in freed space of the database file.
            self._db.execute("PRAGMA secure_delete = ON")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
            self._db.executescript(_ADDED_INDEXES)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._migrate_names()

    def close(self) -> None:
        self._db.close()

    def _add_missing_columns(self) -> None:
        have = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, decl in _ADDED_COLUMNS:
            if name not in have:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")

    # ----------------------------------------------------------------- names at rest

    def _path_hmac(self, folder: str, rel_path: str) -> str | None:
        from anonymizer.audit.log import path_hmac

        return None if self._key is None else path_hmac(self._key, folder, rel_path)

    def _migrate_names(self) -> None:
        """Bring a journal written by an older version up to the names policy, once.

        Rows without a path HMAC get one, names no longer needed are erased, and the file is
        rebuilt (VACUUM) once so that names freed before ``secure_delete`` was on are gone too.
        """
        rows = self._db.execute("SELECT id, folder, rel_path FROM jobs WHERE path_hmac IS NULL AND rel_path != ''")
        todo = [(self._path_hmac(r["folder"], decode_rel(r["rel_path"])), r["id"]) for r in rows.fetchall()]
        rows = self._db.execute(
            "SELECT id, folder, output_rel FROM jobs WHERE output_hmac IS NULL AND output_rel IS NOT NULL"
        )
        outs = [(self._path_hmac(r["folder"], decode_rel(r["output_rel"])), r["id"]) for r in rows.fetchall()]
        if todo or outs:
            with self._tx() as db:
                db.executemany("UPDATE jobs SET path_hmac = ? WHERE id = ?", todo)
                db.executemany("UPDATE jobs SET output_hmac = ? WHERE id = ?", outs)
        self.forget_names()
        if self.get_meta("names_wiped") is None:
            self._db.execute("VACUUM")
            self.set_meta("names_wiped", "1")
            self._checkpoint()

    def forget_names(self) -> int:
        """Erase the file names of every job that no longer needs them; return how many.

        See ``_NAMES_NOT_NEEDED`` for when that is. The row keeps ``path_hmac``, which is what
        the audit names the file by and what ``offer`` recognises a kept source by. Afterwards
        the WAL is checkpointed and truncated: its older frames still hold the names.
        """
        with self._tx() as db:
            erased = db.execute(
                f"UPDATE jobs INDEXED BY jobs_named SET rel_path = '', output_rel = NULL WHERE {_NAMES_NOT_NEEDED}"
            ).rowcount
        if erased:
            self._wal_has_names = True
        if self._wal_has_names:
            self._checkpoint()
        return erased

    def _checkpoint(self) -> None:
        # TRUNCATE waits for readers to leave the WAL, copies it into the database and cuts it to
        # zero bytes. The wait is kept short (a reader left open, say an interactive sqlite3 shell,
        # must not stall the main loop): busy comes back 1 and the next call retries.
        self._db.execute("PRAGMA busy_timeout = 2000")
        try:
            busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            self._db.execute("PRAGMA busy_timeout = 30000")
        self._wal_has_names = bool(busy)

    # ----------------------------------------------------------------- helpers

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            # IMMEDIATE takes the write lock up front, so a read-then-write never hits a
            # lock upgrade failure against the other thread's connection.
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")

    def _tx(self) -> Journal._Tx:
        return Journal._Tx(self._db)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Job]:
        out = []
        for r in self._db.execute(sql, args).fetchall():
            row = dict(r)
            row["rel_path"] = decode_rel(row["rel_path"])
            if row["output_rel"] is not None:
                row["output_rel"] = decode_rel(row["output_rel"])
            out.append(Job(**row))
        return out

    def _update(self, job_id: str, **fields: Any) -> None:
        fields["updated_at"] = self._clock()
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*fields.values(), job_id))

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
        with self._tx() as db:
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
        with self._tx() as db:
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
        jobs = [j for j in self._rows("SELECT * FROM jobs WHERE state = 'running'") if j.id not in kept]
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

    def latest_job_for(self, folder: str, rel_path: str) -> Job | None:
        """Return the newest job of ``folder``/``rel_path`` (by name, or by path HMAC once retired).

        For callers that place a file into a folder and offer it themselves (the job API, the S3
        buckets): when ``offer`` says the file is known, this is the job that covers it.
        """
        rows = self._rows(
            "SELECT * FROM jobs WHERE folder = ? AND (rel_path = ? OR path_hmac = ?) ORDER BY created_at DESC LIMIT 1",
            (folder, encode_rel(rel_path), self._path_hmac(folder, rel_path)),
        )
        return rows[0] if rows else None

    def find_done_by_key(self, key: str, *, exclude: str) -> Job | None:
        """Return a finished (verified, recorded) job with this key, other than ``exclude``."""
        rows = self._rows(
            "SELECT * FROM jobs WHERE job_key = ? AND id != ? AND state IN ('done', 'retired')"
            " AND outcome = 'anonymized' ORDER BY created_at LIMIT 1",
            (key, exclude),
        )
        return rows[0] if rows else None

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

    def mark_vanished(self, job_id: str, reason: str) -> None:
        self._update(job_id, state="vanished", outcome="vanished", error=reason)
        self.forget_names()

    def postpone_retention(self, job_id: str, delay_s: float) -> None:
        """Try retention again later (the filesystem refused); keeps a failing share from spinning."""
        self._update(job_id, retain_after=self._clock() + delay_s)

    def mark_retired(self, job_id: str, action: str) -> None:
        self._update(job_id, state="retired", retention=action, retired_at=self._clock())
        self.forget_names()

    def mark_quarantined_after(self, job_id: str, reason: str, attempts: int) -> None:
        """``mark_quarantined`` that also records how many attempts were made (status shows it)."""
        self._update(job_id, state="quarantined", outcome="quarantined", error=reason, attempts=attempts)

    def retention_failed(self, job_id: str, reason: str, delay_s: float, max_attempts: int) -> int:
        """Count a failed retention try; retry after ``delay_s``, or hold the source for good.

        Return the number of failed tries. After ``max_attempts`` the job keeps state 'done' with
        ``retention = 'held'`` and is never due again: its source stays where it is, and
        ``retention_problems`` shows it with ``reason``.
        """
        job = self.get(job_id)
        assert job is not None
        attempts = job.retention_attempts + 1
        if attempts >= max_attempts:
            self._update(
                job_id, retention_attempts=attempts, retention_error=reason, retention=RETENTION_HELD, retain_after=None
            )
        else:
            self._update(
                job_id, retention_attempts=attempts, retention_error=reason, retain_after=self._clock() + delay_s
            )
        return attempts

    def find_reusable_results(self, key: str, folder: str, *, exclude: str, limit: int = 5) -> list[Job]:
        """Finished jobs of ``folder`` with this key and a recorded output, newest first.

        Their outputs are candidates to reuse for the same content under another name (or dropped
        again); the caller checks each is still there with its recorded SHA-256. A job whose names
        were forgotten (``output_rel`` None) still has its output's hash and ``output_hmac``, by
        which the caller finds that output in the output folder.
        """
        return self._rows(
            "SELECT * FROM jobs WHERE job_key = ? AND folder = ? AND id != ? AND state IN ('done', 'retired')"
            " AND outcome IN ('anonymized', 'duplicate') AND output_sha256 IS NOT NULL"
            " ORDER BY updated_at DESC LIMIT ?",
            (key, folder, exclude, limit),
        )

    def retention_problems(self, limit: int = 20) -> list[Job]:
        """Finished jobs whose retention failed at least once (retrying or held), newest first."""
        return self._rows(
            "SELECT * FROM jobs WHERE state = 'done' AND retention_attempts > 0 ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        )

    def source_counts(self) -> dict[str, int]:
        """What became of finished jobs' sources: per retention action, plus 'awaiting' and 'held'.

        'awaiting' counts sources whose retention is not due yet (or is being retried).
        """
        out: dict[str, int] = {}
        for row in self._db.execute(
            "SELECT CASE WHEN state = 'done' AND retention IS NULL THEN 'awaiting' ELSE retention END AS what,"
            " COUNT(*) AS n FROM jobs WHERE state IN ('done', 'retired') GROUP BY what"
        ):
            out[row["what"] or "awaiting"] = row["n"]
        return out

    def held_by_folder(self) -> dict[str, int]:
        """Number of sources whose retention gave up, per folder (for the metrics gauge)."""
        rows = self._db.execute(
            "SELECT folder, COUNT(*) FROM jobs WHERE state = 'done' AND retention = ? GROUP BY folder",
            (RETENTION_HELD,),
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    # ----------------------------------------------------------------- queries

    def get(self, job_id: str) -> Job | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def unaudited(self) -> list[Job]:
        """Jobs that reached a final outcome but whose audit line may not have been written."""
        return self._rows(
            "SELECT * FROM jobs WHERE audited = 0 AND state IN ('done', 'retired', 'quarantined') ORDER BY updated_at"
        )

    def due_for_retention(self, now: float | None = None) -> list[Job]:
        now = self._clock() if now is None else now
        return self._rows(
            "SELECT * FROM jobs WHERE state = 'done' AND audited = 1 AND retain_after <= ? ORDER BY retain_after",
            (now,),
        )

    def counts(self) -> dict[str, int]:
        """Return the number of jobs in each state (every state present, zero if none)."""
        out = {s: 0 for s in STATES}
        for row in self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            out[row["state"]] = row["n"]
        return out

    def queue_depth(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()[0]

    def queue_depth_by_folder(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT folder, COUNT(*) FROM jobs WHERE state IN ('queued', 'running') GROUP BY folder"
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    def running(self) -> list[Job]:
        return self._rows("SELECT * FROM jobs WHERE state = 'running'")

    def recent_failures(self, limit: int = 10) -> list[Job]:
        """Quarantined jobs and jobs waiting for a retry, newest first."""
        return self._rows(
            "SELECT * FROM jobs WHERE state = 'quarantined' OR (state = 'queued' AND attempts > 0)"
            " ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        )

    def jobs(self, state: str | None = None) -> Iterator[Job]:
        sql, args = ("SELECT * FROM jobs", ()) if state is None else ("SELECT * FROM jobs WHERE state = ?", (state,))
        yield from self._rows(sql + " ORDER BY created_at", args)

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
