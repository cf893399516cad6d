"""API jobs: who submitted what, and the journal job that does the work (read through the inbox).

An API job is a small JSON record in ``state_dir/api/jobs/<id>.json`` (0600): the client id, the
profile name, the daemon folder, the content-derived inbox name, the input hash and the journal
job id. It never holds the upload's file name (which the API does not even read). Its id is an
HMAC of (client, folder, content SHA-256), so the same client sending the same content for the
same profile gets the same job back, and ids cannot be guessed from content.

``state_dir/api/active/<client>/<id>`` marks jobs not finished yet: the per-client concurrency
limit counts them (bounded, unlike the records).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from anonymizer.audit.records import utc_iso
from anonymizer.fsutil import make_private_dir
from anonymizer.store import Job, JobView, job_view
from anonymizer.store.inbox import Inbox, write_private_json

# What a client sees of the engine's summary: counts and timings, never boxes or coordinates.
SUMMARY_KEYS = ("kind", "frames", "duration_s", "counts", "timings")


@dataclass(frozen=True)
class ApiJob:
    id: str
    client_id: str
    profile: str
    folder: str
    rel_path: str
    input_sha256: str
    input_size: int
    journal_id: str
    created_at: float
    deleted_at: float | None = None


class JobStore:
    """Job records and active markers under ``state_dir/api``."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        root = inbox.cfg.state_dir / "api"
        self.records = make_private_dir(root / "jobs")
        self.active = make_private_dir(root / "active")

    def client_tag(self, client_id: str) -> str:
        """What names a client in folders and logs: a 16-hex HMAC of its id."""
        return self.inbox.name_hmac("api-client", client_id)[:16]

    def job_id(self, client_id: str, folder: str, sha256: str) -> str:
        return "a-" + self.inbox.name_hmac("api-job", f"{client_id}\n{folder}\n{sha256}")[:24]

    def _path(self, job_id: str) -> Path:
        if not job_id.startswith("a-") or not job_id[2:].isalnum():
            raise KeyError(job_id)  # never a path from the client
        return self.records / f"{job_id}.json"

    def get(self, job_id: str) -> ApiJob | None:
        try:
            return ApiJob(**json.loads(self._path(job_id).read_text(encoding="utf-8")))
        except (KeyError, FileNotFoundError):
            return None

    def save(self, job: ApiJob) -> None:
        write_private_json(self._path(job.id), asdict(job))

    # ------------------------------------------------------------------ concurrency

    def mark_active(self, job: ApiJob) -> None:
        folder = make_private_dir(self.active / self.client_tag(job.client_id))
        (folder / job.id).touch()

    def active_count(self, client_id: str) -> int:
        """Number of the client's jobs still queued or running (finished markers are dropped)."""
        folder = self.active / self.client_tag(client_id)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return 0
        count = 0
        for name in names:
            job = self.get(name)
            journal_job = None if job is None else self.inbox.job(job.journal_id)
            if journal_job is not None and journal_job.state in ("queued", "running") and job.deleted_at is None:
                count += 1
            else:
                (folder / name).unlink(missing_ok=True)
        return count

    # ------------------------------------------------------------------ views

    def view(self, job: ApiJob, journal_job: Job | None) -> dict[str, Any]:
        """The client's view of a job: state, hashes, counts, timings; no names, no coordinates."""
        # A deleted job shows nothing of the journal's: its files are gone.
        seen = (
            JobView("deleted", updated_at=job.deleted_at)
            if job.deleted_at is not None
            else job_view(journal_job, SUMMARY_KEYS)
        )
        return {
            "id": job.id,
            "state": seen.state,
            "profile": job.profile,
            "outcome": seen.outcome,
            "error": seen.error,
            "attempts": seen.attempts,
            "created_at": utc_iso(job.created_at),
            "updated_at": utc_iso(job.created_at if seen.updated_at is None else seen.updated_at),
            "input": {"sha256": job.input_sha256, "size": job.input_size},
            "output": seen.output,
            **seen.summary,
        }


def now() -> float:
    return time.time()
