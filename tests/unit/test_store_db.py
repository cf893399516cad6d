"""The store owns the journal file: one module opens it, and a file of an older version migrates.

The boundary tests read the package's source (AST), so a new ``sqlite3.connect`` anywhere else,
or an import of a caller from inside the store, fails here rather than in a review.
"""

from __future__ import annotations

import ast
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from anonymizer.audit.log import path_hmac
from anonymizer.store import JOURNAL_FILE, FileStat, Journal, ReviewStore, journal_path, read_status
from anonymizer.store.db import ADDED_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "anonymizer"
KEY = b"k" * 32
# The packages above the store: it must import none of them (daemon.fsutil is the ground floor's,
# moved there at the merge, and types needed only for annotations are imported under TYPE_CHECKING).
ABOVE = ("anonymizer.daemon", "anonymizer.api", "anonymizer.buckets", "anonymizer.review", "anonymizer.scaleout")
ALLOWED = ("anonymizer.fsutil",)

# The jobs table as the first release created it: none of ADDED_COLUMNS, no reviews table.
FIRST_RELEASE = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, folder TEXT NOT NULL, rel_path TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, state TEXT NOT NULL, outcome TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0, input_sha256 TEXT,
    job_key TEXT, duplicate_of TEXT, output_rel TEXT, output_sha256 TEXT, output_size INTEGER,
    summary_json TEXT, error TEXT, audited INTEGER NOT NULL DEFAULT 0, retain_after REAL,
    retention TEXT, retired_at REAL, created_at REAL NOT NULL, started_at REAL, updated_at REAL NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
"""
OLD_ROWS = [
    # id, rel_path, state, outcome, output_rel, audited, retention
    ("j-retired", "visitors/Anna_Schmidt.jpg", "retired", "anonymized", "visitors/Anna_Schmidt.jpg", 1, "kept"),
    ("j-done", "visitors/Bert_Meier.jpg", "done", "anonymized", "visitors/Bert_Meier.jpg", 1, None),
    ("j-queued", "visitors/Carla_Roth.jpg", "queued", None, None, 0, None),
]


def modules_of(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)


def sqlite_connect_calls(path: Path) -> list[int]:
    """Lines of ``path`` that call sqlite3.connect (by attribute or by a from-import)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "connect":
            if isinstance(node.value, ast.Name) and node.value.id == "sqlite3":
                lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "sqlite3":
            if any(a.name == "connect" for a in node.names):
                lines.append(node.lineno)
    return lines


def runtime_imports(path: Path) -> list[str]:
    """Modules ``path`` imports at run time (anywhere, also inside functions; not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    names = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def write_first_release_journal(path: Path) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript(FIRST_RELEASE)
    for job_id, rel, state, outcome, out, audited, retention in OLD_ROWS:
        db.execute(
            "INSERT INTO jobs (id, folder, rel_path, size, mtime_ns, inode, state, outcome, output_rel,"
            " output_sha256, audited, retention, created_at, updated_at)"
            " VALUES (?, 'cams', ?, 1, 1, 1, ?, ?, ?, ?, ?, ?, 1.0, 1.0)",
            (job_id, rel, state, outcome, out, "b" * 64 if out else None, audited, retention),
        )
    db.commit()
    db.close()


def raw_bytes(path: Path) -> bytes:
    # A child process reads the files: closing a descriptor of our own on the database would
    # drop the POSIX locks an open connection in this process holds.
    files = [f"{path}{s}" for s in ("", "-wal", "-shm") if Path(f"{path}{s}").exists()]
    return subprocess.run(["cat", *files], check=True, capture_output=True).stdout


def test_only_the_store_db_module_calls_sqlite_connect() -> None:
    found = {str(p.relative_to(ROOT)): lines for p in modules_of(PACKAGE) if (lines := sqlite_connect_calls(p))}
    assert list(found) == ["anonymizer/store/db.py"], found


def test_the_store_imports_none_of_its_callers() -> None:
    bad = {
        str(p.relative_to(ROOT)): name
        for p in modules_of(PACKAGE / "store")
        for name in runtime_imports(p)
        if name.startswith(ABOVE) and name not in ALLOWED
    }
    assert not bad, bad


def test_the_journal_file_name_is_defined_once_in_the_package() -> None:
    defining = [
        str(p.relative_to(ROOT)) for p in modules_of(PACKAGE) if f'= "{JOURNAL_FILE}"' in p.read_text(encoding="utf-8")
    ]
    assert set(defining) == {"anonymizer/store/db.py"}


def test_a_first_release_journal_migrates_to_the_current_schema_and_names_policy(tmp_path: Path) -> None:
    path = tmp_path / "state" / JOURNAL_FILE
    write_first_release_journal(path)
    journal = Journal(path, hmac_key=KEY)
    try:
        columns = {r[1] for r in journal._db.execute("PRAGMA table_info(jobs)")}
        assert {name for _table, name, _decl in ADDED_COLUMNS} <= columns
        tables = {r[0] for r in journal._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"jobs", "meta", "reviews"} <= tables
        assert journal.get_meta("schema_version") == "1" and journal.get_meta("names_wiped") == "1"
        retired, done, queued = (journal.get(i) for i in ("j-retired", "j-done", "j-queued"))
        assert retired is not None and done is not None and queued is not None
        # Every row gets its path HMAC; the retired job's names are erased, the others' are kept.
        assert retired.path_hmac == path_hmac(KEY, "cams", "visitors/Anna_Schmidt.jpg")
        assert (retired.rel_path, retired.output_rel) == ("", None)
        assert done.rel_path == "visitors/Bert_Meier.jpg" and done.output_rel == "visitors/Bert_Meier.jpg"
        assert done.output_hmac == path_hmac(KEY, "cams", "visitors/Bert_Meier.jpg")
        assert queued.rel_path == "visitors/Carla_Roth.jpg" and queued.retention_attempts == 0
        # The migrated file works as a current one: the retired file is still recognised by HMAC.
        assert journal.offer("cams", "visitors/Anna_Schmidt.jpg", FileStat(1, 1, 1)) is None
    finally:
        journal.close()
    assert b"Anna_Schmidt" not in raw_bytes(path)  # VACUUM and checkpoint left no freed copy
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = Journal(path, hmac_key=KEY)  # a second open changes nothing
    assert again.counts()["retired"] == 1 and again.get("j-done") == done
    again.close()


def test_status_reads_a_first_release_journal_without_changing_it(tmp_path: Path) -> None:
    path = tmp_path / "state" / JOURNAL_FILE
    write_first_release_journal(path)
    before = raw_bytes(path)
    status = read_status(path)
    assert status is not None
    assert status.counts["retired"] == 1 and status.counts["done"] == 1 and status.counts["queued"] == 1
    assert (status.sources, status.retention_problems) == ({}, [])  # no retention columns yet
    assert (status.review_waiting, status.review_oldest_held_at) == (0, None)  # no reviews table yet
    assert raw_bytes(path) == before
    assert read_status(tmp_path / "nowhere" / JOURNAL_FILE) is None


def test_read_only_opens_never_create_the_file(tmp_path: Path) -> None:
    path = journal_path(tmp_path / "state")
    with pytest.raises(sqlite3.Error):
        ReviewStore(path, readonly=True).waiting()
    assert not path.exists()


def test_status_counts_running_jobs_and_the_oldest_waiting_review(tmp_path: Path) -> None:
    path = journal_path(tmp_path / "state")
    clock = iter(float(t) for t in range(100, 200))
    journal = Journal(path, hmac_key=KEY, clock=lambda: next(clock))
    ids = [journal.offer("cams", f"c{i}.jpg", FileStat(1, i, i)) for i in range(3)]
    claimed = journal.claim(["cams"])
    assert claimed is not None and claimed.id == ids[0]
    reviews = ReviewStore(path)
    reviews.hold(ids[1], "cams", "output.jpg", now=150.0)
    reviews.close()
    journal.close()
    status = read_status(path)
    assert status is not None
    assert [j.id for j in status.running] == [ids[0]]
    assert status.counts["running"] == 1 and status.counts["review"] == 1 and status.counts["queued"] == 1
    assert status.queue_by_folder == {"cams": 2}  # queued and running, not the held one
    assert (status.review_waiting, status.review_oldest_held_at) == (1, 150.0)
