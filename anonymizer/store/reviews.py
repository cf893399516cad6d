"""The ``reviews`` table: outputs held for review and the decisions taken on them.

One row per held job, in the journal file beside the jobs (schema in ``store.db``). The review
logic (what a hold copies, what a decision does) is ``anonymizer.review.hold`` and the daemon's;
this module only records and reads. States of a review::

    waiting ──decide──▶ approved ──daemon──▶ published
       ▲           └──▶ rejected ──daemon──▶ closed | rerun ──job runs again──▶ waiting (round + 1)
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonymizer.store.db import connect, transaction

# Held copies live in ``<state_dir>/review/<job id>/`` beside the journal file.
REVIEW_DIR = "review"


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
        self._db = connect(self.path, readonly=readonly)

    def close(self) -> None:
        self._db.close()

    def _one(self, sql: str, args: tuple[Any, ...]) -> Review | None:
        try:
            row = self._db.execute(sql, args).fetchone()
        except sqlite3.OperationalError:
            return None  # read-only, on a journal no daemon with the review hold has opened yet
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
        """Record a held output (again, after a rejection with masks: a new round); the job waits in 'review'."""
        with transaction(self._db) as db:
            db.execute(
                "INSERT INTO reviews (job_id, folder, state, held_at, copy_name) VALUES (?, ?, 'waiting', ?, ?)"
                " ON CONFLICT(job_id) DO UPDATE SET state = 'waiting', held_at = excluded.held_at,"
                # operator and decided_at stay: the last decision's (a rejection with masks),
                # what `review show` reports until the next one (issue 25 found 'operator: None').
                " copy_name = excluded.copy_name, rounds = rounds + 1, applied_at = NULL",
                (job_id, folder, now, copy_name),
            )
            db.execute("UPDATE jobs SET state = 'review', updated_at = ? WHERE id = ?", (now, job_id))

    def decide(self, job_id: str, decision: str, operator: str, now: float, masks_yaml: str | None = None) -> str:
        """Record 'approved' or 'rejected' for a waiting review. Return what happened:
        'recorded', or the review's state when there was nothing to decide (already decided,
        published or closed), or 'unknown'."""
        masks_sha = hashlib.sha256(masks_yaml.encode()).hexdigest() if masks_yaml is not None else None
        with transaction(self._db) as db:
            row = db.execute("SELECT state FROM reviews WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return "unknown"
            if row["state"] != "waiting":
                return str(row["state"])
            db.execute(
                "UPDATE reviews SET state = ?, operator = ?, decided_at = ?, masks_yaml = ?, masks_sha256 = ?"
                " WHERE job_id = ?",
                (decision, operator, now, masks_yaml, masks_sha, job_id),
            )
            return "recorded"

    def applied(self, job_id: str, state: str, now: float) -> None:
        self._db.execute("UPDATE reviews SET state = ?, applied_at = ? WHERE job_id = ?", (state, now, job_id))

    def rerun_masks(self, job_id: str) -> tuple[str, str] | None:
        """(sidecar YAML, its SHA-256) a rejected job runs again with, or None."""
        row = self.get(job_id)
        if row is None or row.state != "rerun" or row.masks_yaml is None:
            return None
        return row.masks_yaml, row.masks_sha256 or ""
