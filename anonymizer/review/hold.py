"""The review hold: a finished output waits in a private review folder until someone decides.

With ``review: required`` in a folder's profile, the daemon's worker verifies each output as
usual and then, instead of publishing it, calls ``hold``: the output is copied to
``<state_dir>/review/<job id>/`` beside its QA report, the job's journal row moves to state
``review`` (never claimed, never due for retention: the source stays) and a ``review`` audit line
says so. ``anonymizer review approve|reject`` records a decision in the journal's ``reviews``
table (``anonymizer.store.reviews``); the daemon applies it on its next pass (``apply_decisions``), also after a restart:

    approve ─▶ copy to the output share (never overwriting; an earlier interrupted publish of
               the same bytes is adopted) ─▶ the job is 'done' as if published at once
               ─▶ retention runs as the profile says. Applied once: a second approve is a no-op.
    reject  ─▶ the review copy is deleted; with --masks the job runs again with those masks
               (and is held again), without it the job ends 'rejected' and the source stays.

Every hold and decision is an audit record naming the operator by a checked id (the local user
by default), never by free text.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from anonymizer.audit.records import utc_iso
from anonymizer.errors import ConfigError

# The table of holds and decisions is the store's (one module opens the journal file); these
# names stay importable from here for the review logic's callers.
from anonymizer.store.reviews import REVIEW_DIR, Review, ReviewStore

__all__ = [
    "REVIEW_DIR",
    "Review",
    "ReviewStore",
    "check_operator",
    "local_operator",
    "now_s",
    "remove_copy",
    "review_record",
]

_OPERATOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


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


def review_record(job_id: str, event: str, now: float, **fields: Any) -> dict[str, Any]:
    """An audit line for a hold or a decision: ids, hashes and counts, never names."""

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
