"""Names at rest: how file names are stored in the journal, and when they are erased.

A job needs its source's and its output's names only while something will still read or move
those files. Afterwards the row keeps the names' HMACs (the audit's path key), hashes, sizes,
outcome and times; ``rel_path`` becomes '' (never a real relative path) and ``output_rel`` NULL.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable
from pathlib import Path

from anonymizer.audit.log import path_hmac
from anonymizer.fsutil import find_by_name_hmac
from anonymizer.store.db import transaction
from anonymizer.store.rows import Job

# Names on a share need not be valid UTF-8; Python hands them over with surrogate escapes, which
# SQLite cannot store as TEXT. Such a name is stored as this prefix + base64 of its raw bytes: NUL
# never occurs in a real file name, so the two forms cannot be confused.
_RAW_PREFIX = "\x00b64:"

# A job whose names are no longer needed ("retired" for privacy): nothing will read or move its
# file again, and its audit line is written.
#   - retired: retention settled (kept, deleted, moved, source-gone, source-changed) and audited;
#   - quarantined: the file was moved to quarantine (which keeps its name) and audited;
#   - vanished: the file changed or went away before processing; it gets a new job if it returns;
#   - and no unfinished duplicate points at it (a duplicate's retention checks its original's
#     recorded output in place).
# A 'done' job (retention pending or held) keeps its names: its source and output are still
# handled by name.
NAMES_NOT_NEEDED = """
    rel_path != '' AND path_hmac IS NOT NULL
    AND ((state IN ('retired', 'quarantined') AND audited = 1) OR state = 'vanished')
    AND NOT EXISTS (
        SELECT 1 FROM jobs AS dup WHERE dup.duplicate_of = jobs.id
        AND dup.state NOT IN ('retired', 'quarantined', 'vanished')
    )
"""


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


def name_hmac(key: bytes | None, folder: str, rel_path: str) -> str | None:
    """The HMAC that names ``folder``/``rel_path`` at rest, or None without a key (read-only)."""
    return None if key is None else path_hmac(key, folder, rel_path)


def find_output_rel(
    job: Job,
    output: Path,
    key: bytes,
    *,
    under: str = "",
    recursive: bool = True,
    every_1000: Callable[[], None] | None = None,
) -> str | None:
    """Where ``job``'s output lies, relative to ``output`` (its folder's output root), or None.

    The journal's ``output_rel`` while it keeps the name; once the job is retired and the name
    erased, the regular file whose name has the recorded ``output_hmac`` (``key``: the path key),
    looked for in the folder ``under`` and, when ``recursive``, below it (``find_by_name_hmac``).
    Whether the file there is still the recorded output is the caller's check
    (``durable.is_recorded_file``).
    """
    if job.output_rel is not None:
        return job.output_rel
    if not job.output_hmac:
        return None
    return find_by_name_hmac(
        output,
        lambda rel: path_hmac(key, job.folder, rel),
        job.output_hmac,
        under=under,
        recursive=recursive,
        every_1000=every_1000,
    )


def fill_missing_hmacs(db: sqlite3.Connection, key: bytes | None) -> int:
    """Give every named row written by an older version its path (and output) HMAC; return how many."""
    rows = db.execute("SELECT id, folder, rel_path FROM jobs WHERE path_hmac IS NULL AND rel_path != ''")
    todo = [(name_hmac(key, r["folder"], decode_rel(r["rel_path"])), r["id"]) for r in rows.fetchall()]
    rows = db.execute("SELECT id, folder, output_rel FROM jobs WHERE output_hmac IS NULL AND output_rel IS NOT NULL")
    outs = [(name_hmac(key, r["folder"], decode_rel(r["output_rel"])), r["id"]) for r in rows.fetchall()]
    if todo or outs:
        with transaction(db):
            db.executemany("UPDATE jobs SET path_hmac = ? WHERE id = ?", todo)
            db.executemany("UPDATE jobs SET output_hmac = ? WHERE id = ?", outs)
    return len(todo) + len(outs)


def erase_names(db: sqlite3.Connection) -> int:
    """Erase the names of every job that no longer needs them (``NAMES_NOT_NEEDED``); return how many."""
    with transaction(db):
        return db.execute(
            f"UPDATE jobs INDEXED BY jobs_named SET rel_path = '', output_rel = NULL WHERE {NAMES_NOT_NEEDED}"
        ).rowcount
