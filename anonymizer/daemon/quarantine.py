"""Quarantine: move a rejected input aside with a ``<name>.reason.json`` beside it. Never delete.

The file keeps its name and its sub-folder (mirrored under the quarantine folder); a name that is
taken gets a unique ``-N`` suffix. The reason file holds the reason, job id, input SHA-256 (when
known) and time: no coordinates, no detections.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from anonymizer.audit.records import utc_iso
from anonymizer.durable import move_no_overwrite, write_new_file
from anonymizer.fsutil import DONE_SUFFIX


def quarantine_file(
    src: Path,
    quarantine_dir: Path,
    rel_path: str,
    *,
    reason: str,
    job_id: str,
    input_sha256: str | None,
    error_type: str,
    now: float | None = None,
) -> Path:
    """Move ``src`` to ``quarantine_dir/rel_path`` (unique name), write its reason file, return it."""
    now = time.time() if now is None else now
    final = move_no_overwrite(src, quarantine_dir / rel_path, expected_sha256=input_sha256)
    info = {
        "reason": reason,
        "error_type": error_type,
        "job_id": job_id,
        "input_sha256": input_sha256,
        "time": utc_iso(now),
    }
    write_new_file(final.with_name(final.name + ".reason.json"), (json.dumps(info, indent=2) + "\n").encode())
    marker = src.with_name(src.name + DONE_SUFFIX)
    if marker.is_file() and not marker.is_symlink():
        # The writer's completion marker is an empty signal, not evidence; left behind it would
        # only confuse the next writer of the same name.
        marker.unlink()
    return final
