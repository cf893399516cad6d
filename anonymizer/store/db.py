"""The journal file: its name, how it is opened (pragmas), its schema and its migrations.

The only module that calls ``sqlite3.connect``. Everything else (the job journal, the review
table, the status queries, the inbox of the API and the buckets) receives a connection from
``connect``, so every connection gets the same pragmas and every writer the same schema.

Migrations are additive and idempotent, run at every writable open: tables and indexes are
created if missing, columns added after the first release are added with ALTER TABLE. A file
written by any earlier version therefore opens with the current schema; an older version
ignores what it does not know. The names policy (``names.migrate_names``) is the one migration
that rewrites rows; the job journal runs it because it needs the audit's path key.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from anonymizer.fsutil import make_private_dir, make_private_file

JOURNAL_FILE = "journal.sqlite3"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30000

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

# Columns added after the first release: (table, name, declaration). A file created before them
# gets them with ALTER TABLE at open; CREATE TABLE above has them already.
ADDED_COLUMNS = (
    # Failed retention tries of a finished job (the recorded output missing, the filesystem
    # refusing): bounded, so a source that cannot be retired reaches a final, visible state.
    ("jobs", "retention_attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("jobs", "retention_error", "TEXT"),
    # HMAC-SHA256 of "<folder>/<rel_path>" with the audit's path key (``audit.log.path_hmac``):
    # what identifies the file once its job is retired and the name columns are erased.
    ("jobs", "path_hmac", "TEXT"),
    # The same HMAC of "<folder>/<output_rel>": how an earlier output is found again (by walking
    # the output folder's names) once its job is retired and ``output_rel`` is erased.
    ("jobs", "output_hmac", "TEXT"),
)

# Created after the added columns because they index them. ``jobs_named`` holds the few rows
# that still carry a name and ``jobs_by_duplicate_of`` finds a job's duplicates, so erasing names
# never scans the whole (ever-growing) table.
_ADDED_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_by_path_hmac ON jobs(folder, path_hmac);
CREATE INDEX IF NOT EXISTS jobs_named ON jobs(state) WHERE rel_path != '';
CREATE INDEX IF NOT EXISTS jobs_by_duplicate_of ON jobs(duplicate_of) WHERE duplicate_of IS NOT NULL;
"""


def journal_path(state_dir: Path) -> Path:
    """Given a daemon's ``state_dir``, return where its journal file is."""
    return Path(state_dir) / JOURNAL_FILE


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the journal file at ``path``; a writable open creates and migrates it.

    Read-only opens never create or change anything (``anonymizer status`` run as another
    user). Writable opens create the file 0600 first: SQLite would create it 0644 (less the
    umask) and give -wal/-shm the mode of the database file. Every connection is in autocommit
    mode (``isolation_level=None``); writers group statements with ``transaction``.

    Raise ``sqlite3.Error`` or ``OSError`` when the file cannot be opened.
    """
    path = Path(path)
    if readonly:
        uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
    else:
        make_private_dir(path.parent)
        make_private_file(path)
        for extra in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            if extra.exists():
                make_private_file(extra)  # left wider by an older version
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if not readonly:
        # Erased names must not survive in freed space of the database file.
        db.execute("PRAGMA secure_delete = ON")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        migrate(db)
    return db


def migrate(db: sqlite3.Connection) -> None:
    """Bring the schema of an open, writable journal up to date (idempotent)."""
    db.executescript(_SCHEMA)
    for table, name, decl in ADDED_COLUMNS:
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if name not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
    db.executescript(_ADDED_INDEXES)
    db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed when the block ends, rolled back when it raises.

    IMMEDIATE takes the write lock up front, so a read-then-write never hits a lock upgrade
    failure against another connection (the scanner's, the API's, the review CLI's).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def checkpoint(db: sqlite3.Connection) -> bool:
    """Copy the WAL into the database and cut it to zero bytes; return True if readers blocked it.

    The wait is kept short (a reader left open, say an interactive sqlite3 shell, must not stall
    the main loop): when busy, the caller tries again on its next call.
    """
    db.execute("PRAGMA busy_timeout = 2000")
    try:
        busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return bool(busy)
