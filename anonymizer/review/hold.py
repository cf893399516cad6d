"""The review hold: a finished output waits in a private review folder until someone decides.

With ``review: required`` in a folder's profile, the daemon's worker verifies each output as
usual and then, instead of publishing it, calls ``hold``: the output is copied to
``<state_dir>/review/<job id>/`` beside its QA report, the job's journal row moves to state
``review`` (never claimed, never due for retention: the source stays) and a ``review`` audit line
says so. ``anonymizer review approve|reject`` records a decision in the journal's ``reviews``
table; the daemon applies it on its next pass (``apply_decisions``), also after a restart:

    approve ─▶ copy to the output share (never overwriting; an earlier interrupted publish of
               the same bytes is adopted) ─▶ the job is 'done' as if published at once
               ─▶ retention runs as the profile says. Applied once: a second approve is a no-op.
    reject  ─▶ the review copy is deleted; with --masks the job runs again with those masks
               (and is held again), without it the job ends 'rejected' and the source stays.

Every hold and decision is an audit record naming the operator by a checked id (the local user
by default), never by free text.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonymizer.errors import ConfigError

REVIEW_DIR = "review"
_OPERATOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    job_id      TEXT PRIMARY KEY,
    folder      TEXT NOT NULL,
    state       TEXT NOT NULL,          -- waiting | approved | rejected | published | closed | rerun
    held_at     REAL NOT NULL,
    rounds      INTEGER NOT NULL DEFAULT 1,
    copy_name   TEXT NOT NULL,          -- the review copy's name inside its folder (output<suffix>)
    operator    TEXT,
    decided_at  REAL,
    applied_at  REAL,
    masks_yaml  TEXT,                   -- reject --masks: the sidecar the job runs again with
    masks_sha256 TEXT
);
"""


def check_operator(value: str) -> str:
    """An operator id as the audit records it: a login or an id, not a name in free text."""
    if not _OPERATOR.match(value or ""):
        raise ConfigError(
            f"operator id {value!r}: expected 1-64 of letters, digits and . _ @ - (a login or an id, not a name)"
        )
    return value


def local_operator() -> str:
    import getpass

    try:
        return check_operator(getpass.getuser())
    except (ConfigError, OSError, KeyError):
        return f"uid-{os.getuid()}"


@dataclass(frozen=True)
class Review:
    job_id: str
    folder: str
    state: str
    held_at: float
    rounds: int
    copy_name: str
    operator: str | None
    decided_at: float | None
    applied_at: float | None
    masks_yaml: str | None
    masks_sha256: str | None


class ReviewStore:
    """The journal's ``reviews`` table (same SQLite file as the jobs; its own connection)."""

    def __init__(self, journal_path: Path, *, readonly: bool = False) -> None:
        self.path = Path(journal_path)
        self.review_root = self.path.parent / REVIEW_DIR
        if readonly:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        else:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.executescript(_SCHEMA)
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        self._db.close()

    def _one(self, sql: str, args: tuple[Any, ...]) -> Review | None:
        try:
            row = self._db.execute(sql, args).fetchone()
        except sqlite3.OperationalError:
            return None  # a journal no daemon with the review hold has opened yet
        return None if row is None else Review(**dict(row))

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Review]:
        try:
            return [Review(**dict(r)) for r in self._db.execute(sql, args).fetchall()]
        except sqlite3.OperationalError:
            return []

    def get(self, job_id: str) -> Review | None:
        return self._one("SELECT * FROM reviews WHERE job_id = ?", (job_id,))

    def waiting(self) -> list[Review]:
        """Reviews not yet decided (oldest first)."""
        return self._all("SELECT * FROM reviews WHERE state = 'waiting' ORDER BY held_at")

    def decided(self) -> list[Review]:
        """Decisions the daemon has not applied yet."""
        return self._all("SELECT * FROM reviews WHERE state IN ('approved', 'rejected') ORDER BY decided_at")

    def all(self) -> list[Review]:
        return self._all("SELECT * FROM reviews ORDER BY held_at")

    def job_row(self, job_id: str) -> sqlite3.Row | None:
        """The job's own row (state, hashes, summary) for ``review show``."""
        return self._db.execute(
            "SELECT state, input_sha256, output_sha256, output_size, summary_json FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()

    def copy_dir(self, job_id: str) -> Path:
        return self.review_root / job_id

    def hold(self, job_id: str, folder: str, copy_name: str, now: float) -> None:
        """Record a held output (again, after a rejection with masks: a new round)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO reviews (job_id, folder, state, held_at, copy_name) VALUES (?, ?, 'waiting', ?, ?)"
                " ON CONFLICT(job_id) DO UPDATE SET state = 'waiting', held_at = excluded.held_at,"
                # operator and decided_at stay: the last decision's (a rejection with masks),
                # what `review show` reports until the next one (issue 25 found 'operator: None').
                " copy_name = excluded.copy_name, rounds = rounds + 1, applied_at = NULL",
                (job_id, folder, now, copy_name),
            )
            self._db.execute("UPDATE jobs SET state = 'review', updated_at = ? WHERE id = ?", (now, job_id))

    def decide(self, job_id: str, decision: str, operator: str, now: float, masks_yaml: str | None = None) -> str:
        """Record 'approved' or 'rejected' for a waiting review. Return what happened:
        'recorded', or the review's state when there was nothing to decide (already decided,
        published or closed), or 'unknown'."""
        masks_sha = hashlib.sha256(masks_yaml.encode()).hexdigest() if masks_yaml is not None else None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT state FROM reviews WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return "unknown"
            if row["state"] != "waiting":
                return str(row["state"])
            self._db.execute(
                "UPDATE reviews SET state = ?, operator = ?, decided_at = ?, masks_yaml = ?, masks_sha256 = ?"
                " WHERE job_id = ?",
                (decision, operator, now, masks_yaml, masks_sha, job_id),
            )
            return "recorded"
        finally:
            self._db.execute("COMMIT")

    def applied(self, job_id: str, state: str, now: float) -> None:
        self._db.execute("UPDATE reviews SET state = ?, applied_at = ? WHERE job_id = ?", (state, now, job_id))

    def rerun_masks(self, job_id: str) -> tuple[str, str] | None:
        """(sidecar YAML, its SHA-256) a rejected job runs again with, or None."""
        row = self.get(job_id)
        if row is None or row.state != "rerun" or row.masks_yaml is None:
            return None
        return row.masks_yaml, row.masks_sha256 or ""


def review_record(job_id: str, event: str, now: float, **fields: Any) -> dict[str, Any]:
    """An audit line for a hold or a decision: ids, hashes and counts, never names."""
    from anonymizer.audit.records import utc_iso

    return {"event": "review", "time": utc_iso(now), "job_id": job_id, "action": event, **fields}


def remove_copy(folder: Path, keep_reports: bool = True) -> None:
    """Delete a review copy; its QA report stays beside where it was (what the reviewer saw)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if keep_reports and ".qa." in path.name:
            continue
        path.unlink(missing_ok=True)


def now_s() -> float:
    return time.time()
