"""Shared by the daemon benches: fill an input folder with files the journal already knows.

A bench shortcut: the rows are inserted in one transaction, where the daemon commits per job.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from anonymizer.store import Journal, new_job_id
from anonymizer.store.db import connect, transaction


def seed_processed(journal_path: Path, folder_name: str, inp: Path, count: int, *, prefix: str, suffix: str) -> None:
    """Create ``count`` small files in 100 sub-folders of ``inp``, recorded as processed and kept."""
    now = time.time()
    rows = []
    for i in range(count):
        sub = inp / f"{prefix}{i % 100:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{prefix}-{i:06d}{suffix}"
        path.write_bytes(os.urandom(256))
        st = path.stat()
        rel = path.relative_to(inp).as_posix()
        rows.append((new_job_id(), folder_name, rel, st.st_size, st.st_mtime_ns, st.st_ino, now, now))
    Journal(journal_path).close()  # creates the schema and the path key
    db = connect(journal_path)
    with transaction(db):
        db.executemany(
            "INSERT INTO jobs (id, folder, rel_path, size, mtime_ns, inode, state, outcome, audited,"
            " retention, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'retired', 'anonymized', 1, 'kept', ?, ?)",
            rows,
        )
    db.close()
