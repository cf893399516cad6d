"""What the journal's rows are: the job states and the frozen ``Job`` and ``FileStat`` types."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# 'review': a verified output held for review (profile review: required, anonymizer.review.hold);
# never claimed, never due for retention, until a decision makes it 'done' (or queued again).
STATES = ("queued", "running", "review", "done", "retired", "quarantined", "vanished")

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
