"""Reading the jobs table: the job queries, ``anonymizer status``'s counts and the API's job view.

``JobReader`` answers every read-only question about jobs over one connection; ``Journal``
extends it with the writes. ``read_status`` is what ``anonymizer status`` shows, read from a
read-only connection so that it never changes the file it inspects.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anonymizer.store.db import connect
from anonymizer.store.names import decode_rel, encode_rel, name_hmac
from anonymizer.store.rows import RETENTION_HELD, STATES, Job

# Finished journal states whose output the API and the buckets may serve, and the outcomes that
# leave one.
FINISHED = ("done", "retired")
OUTPUT_OUTCOMES = ("anonymized", "duplicate")


class JobReader:
    """Read-only queries over the jobs table of one connection (one thread's)."""

    def __init__(self, db: sqlite3.Connection, *, hmac_key: bytes | None = None) -> None:
        self._db = db
        self._key = hmac_key

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Job]:
        out = []
        for r in self._db.execute(sql, args).fetchall():
            row = dict(r)
            row["rel_path"] = decode_rel(row["rel_path"])
            if row["output_rel"] is not None:
                row["output_rel"] = decode_rel(row["output_rel"])
            out.append(Job(**row))
        return out

    def _path_hmac(self, folder: str, rel_path: str) -> str | None:
        return name_hmac(self._key, folder, rel_path)

    def get(self, job_id: str) -> Job | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return rows[0] if rows else None

    def jobs(self, state: str | None = None) -> Iterator[Job]:
        sql, args = ("SELECT * FROM jobs", ()) if state is None else ("SELECT * FROM jobs WHERE state = ?", (state,))
        yield from self._rows(sql + " ORDER BY created_at", args)

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

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

    def unaudited(self) -> list[Job]:
        """Jobs that reached a final outcome but whose audit line may not have been written."""
        return self._rows(
            "SELECT * FROM jobs WHERE audited = 0 AND state IN ('done', 'retired', 'quarantined') ORDER BY updated_at"
        )

    def due_for_retention(self, now: float) -> list[Job]:
        return self._rows(
            "SELECT * FROM jobs WHERE state = 'done' AND audited = 1 AND retain_after <= ? ORDER BY retain_after",
            (now,),
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


@dataclass(frozen=True)
class Status:
    """What ``anonymizer status`` reports from the journal (the daemon's liveness comes elsewhere).

    ``running`` are the jobs the journal calls running; with a broker, some of them are only
    handed to it (issue 25): the caller places each with ``split_running``.
    """

    counts: dict[str, int]
    running: list[Job]
    recent_failures: list[Job]
    queue_by_folder: dict[str, int]
    sources: dict[str, int] = field(default_factory=dict)
    retention_problems: list[Job] = field(default_factory=list)
    review_waiting: int = 0
    review_oldest_held_at: float | None = None


def read_status(path: Path, *, failures: int = 10, problems: int = 20) -> Status | None:
    """Given the journal file, read what ``anonymizer status`` shows; None if there is no file yet.

    Opens read-only and closes again. Raise ``sqlite3.Error`` or ``OSError`` when the file
    cannot be read (another user's, say).
    """
    if not Path(path).exists():
        return None
    db = connect(path, readonly=True)
    try:
        reader = JobReader(db)
        counts = reader.counts()
        running = reader.running()
        recent = reader.recent_failures(failures)
        depth = reader.queue_depth_by_folder()
        try:
            sources, retention = reader.source_counts(), reader.retention_problems(problems)
        except sqlite3.OperationalError:
            # A journal the current daemon has not opened yet lacks the retention columns.
            sources, retention = {}, []
        try:
            held = [r[0] for r in db.execute("SELECT held_at FROM reviews WHERE state = 'waiting' ORDER BY held_at")]
        except sqlite3.OperationalError:
            held = []  # a journal no daemon with the review hold has opened yet
    finally:
        db.close()
    return Status(counts, running, recent, depth, sources, retention, len(held), held[0] if held else None)


@dataclass(frozen=True)
class JobView:
    """How a client of the API or the buckets sees a journal job: no names, no coordinates.

    ``state``: queued | running | review | done (a verified output to serve) | failed.
    """

    state: str
    outcome: str | None = None
    error: str | None = None
    attempts: int = 0
    updated_at: float | None = None
    output: dict[str, Any] | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def job_view(job: Job | None, summary_keys: tuple[str, ...]) -> JobView:
    """Given a journal job (None: the journal has none), return what its submitter may see.

    ``summary_keys``: the engine summary's keys the caller shows (counts and timings, never boxes).
    """
    if job is None:
        return JobView("failed")
    summary = {k: v for k, v in job.summary.items() if k in summary_keys}
    common = {"outcome": job.outcome, "attempts": job.attempts, "updated_at": job.updated_at, "summary": summary}
    if job.state in ("queued", "running", "review"):
        # review: verified, but held until a reviewer approves it (profile review: required)
        return JobView(job.state, **common)
    if job.state in FINISHED and job.outcome in OUTPUT_OUTCOMES:
        return JobView("done", output={"sha256": job.output_sha256, "size": job.output_size}, **common)
    # quarantined (bad media, retries exhausted) or vanished: the journal's reason is already
    # free of names (daemon/logging.describe_error).
    return JobView("failed", error=job.error, **common)
