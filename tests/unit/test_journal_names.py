"""Names at rest: a retired job keeps only its path HMAC, and the journal's bytes forget the name.

Every test works on a real SQLite file and scans its raw bytes (and its WAL's) the way
``tests/faults/test_privacy_scan.py`` scans logs: a name that is anywhere in the file is found.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from anonymizer.audit.log import KEY_FILE, load_or_create_key, path_hmac
from anonymizer.store import FileStat, Journal, find_output_rel

NAME = "visitors/Anna_Schmidt_passport.jpg"
NEEDLES = (b"Anna_Schmidt", b"passport", b"visitors/")
STAT = FileStat(size=100, mtime_ns=5, inode=42)


def raw_bytes(path: Path) -> bytes:
    """The journal as it lies on disk: main file, WAL and shared-memory index.

    Read by a child process: closing a descriptor of our own on the database would drop the
    POSIX locks the open connection in this process holds on it.
    """
    files = [f"{path}{s}" for s in ("", "-wal", "-shm") if Path(f"{path}{s}").exists()]
    return subprocess.run(["cat", *files], check=True, capture_output=True).stdout


def leaks(path: Path) -> list[bytes]:
    data = raw_bytes(path)
    return [n for n in NEEDLES if n in data]


def finish(j: Journal, job_id: str, *, key: str = "k", output_rel: str = NAME, **extra: object) -> None:
    j.set_hash(job_id, "a" * 64, key)
    j.set_pending_output(job_id, output_rel, "b" * 64, 1, {"kind": "image"})
    j.mark_done(
        job_id,
        outcome=extra.pop("outcome", "anonymized"),  # type: ignore[arg-type]
        output_rel=output_rel,
        output_sha256="b" * 64,
        output_size=1,
        summary={"kind": "image"},
        retain_after=0.0,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.sqlite3"


def test_after_retirement_the_journal_file_and_its_wal_hold_no_file_name(path: Path) -> None:
    j = Journal(path)
    job_id = j.offer("cam", NAME, STAT)
    j.claim(["cam"])
    finish(j, job_id)
    j.mark_audited(job_id)
    assert leaks(path), "the scan must see the name while the job is open"
    j.mark_retired(job_id, "deleted")
    assert leaks(path) == []
    job = j.get(job_id)
    assert job.rel_path == "" and job.output_rel is None
    # What stays is the path HMAC the audit line names the file by, with the same key.
    assert job.path_hmac == path_hmac(load_or_create_key(path.parent), "cam", NAME)
    assert (job.input_sha256, job.output_sha256, job.outcome, job.retention) == (
        "a" * 64,
        "b" * 64,
        "anonymized",
        "deleted",
    )
    j.close()
    assert leaks(path) == []


def test_a_kept_source_is_still_recognised_by_its_path_hmac_once_its_name_is_erased(path: Path) -> None:
    j = Journal(path)
    job_id = j.offer("cam", NAME, STAT)
    j.claim(["cam"])
    finish(j, job_id)
    j.mark_audited(job_id)
    j.mark_retired(job_id, "kept")
    assert j.get(job_id).rel_path == ""
    assert j.offer("cam", NAME, STAT) is None  # the rescan does not queue it again
    assert j.offer("other", NAME, STAT) is not None  # another folder's file of that name is new
    j.close()


def test_a_quarantined_job_keeps_its_name_until_its_audit_line_is_written(path: Path) -> None:
    # write_missing_audit needs the name (for profiles that log names) until the line exists.
    j = Journal(path)
    job_id = j.offer("cam", NAME, STAT)
    j.claim(["cam"])
    j.mark_quarantined(job_id, "UnsupportedMediaError: file is empty (0 bytes)")
    assert [job.rel_path for job in j.unaudited()] == [NAME]
    j.mark_audited(job_id)
    assert j.get(job_id).rel_path == "" and leaks(path) == []
    assert j.get(job_id).error == "UnsupportedMediaError: file is empty (0 bytes)"
    j.close()


def test_a_vanished_job_forgets_its_name_at_once(path: Path) -> None:
    j = Journal(path)
    job_id = j.offer("cam", NAME, STAT)
    j.claim(["cam"])
    j.mark_vanished(job_id, "source changed after it settled")
    assert j.get(job_id).rel_path == "" and leaks(path) == []
    j.close()


def test_an_open_job_and_a_job_awaiting_retention_keep_their_names(path: Path) -> None:
    j = Journal(path)
    queued = j.offer("cam", "a/queued-Jane.jpg", STAT)
    done = j.offer("cam", NAME, STAT)
    j.claim(["cam"])
    finish(j, done)
    j.mark_audited(done)
    assert j.forget_names() == 0
    assert j.get(queued).rel_path == "a/queued-Jane.jpg"
    assert (j.get(done).rel_path, j.get(done).output_rel) == (NAME, NAME)
    assert [x.id for x in j.due_for_retention()] == [done]  # retention still finds it by name
    j.close()


def test_an_original_keeps_its_names_while_a_duplicate_of_it_awaits_retention(path: Path) -> None:
    # The duplicate's retention checks the original's recorded output in place, by name.
    j = Journal(path)
    original = j.offer("cam", NAME, STAT)
    dup = j.offer("cam", "copy-of-Anna.jpg", FileStat(100, 6, 43))
    finish(j, original)
    j.mark_audited(original)
    finish(j, dup, outcome="duplicate", duplicate_of=original)
    j.mark_audited(dup)
    j.mark_retired(original, "deleted")
    assert j.get(original).output_rel == NAME
    j.mark_retired(dup, "deleted")
    assert j.get(original).rel_path == "" and j.get(original).output_rel is None
    assert leaks(path) == [] and b"copy-of-Anna" not in raw_bytes(path)
    j.close()


def test_a_journal_written_before_this_policy_is_cleaned_when_opened(path: Path) -> None:
    # An older version: no path_hmac column, no secure_delete, and a deleted row whose name
    # lingers in a free page of the file.
    path.parent.mkdir(parents=True)
    Journal(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA secure_delete = OFF")
    db.execute("DROP INDEX jobs_by_path_hmac")
    db.execute("ALTER TABLE jobs DROP COLUMN path_hmac")
    db.execute("DELETE FROM meta WHERE key = 'names_wiped'")
    row = "INSERT INTO jobs (id, folder, rel_path, size, mtime_ns, inode, state, retention, audited, created_at, updated_at)"
    db.execute(row + " VALUES ('j-1', 'cam', ?, 1, 1, 1, 'retired', 'kept', 1, 0, 0)", (NAME,))
    db.execute(row + " VALUES ('j-2', 'cam', 'gone/Bob_Miller_id-card.jpg', 1, 1, 2, 'retired', 'deleted', 1, 0, 0)")
    db.execute("DELETE FROM jobs WHERE id = 'j-2'")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    assert b"Bob_Miller" in raw_bytes(path) and leaks(path)

    j = Journal(path)
    assert leaks(path) == [] and b"Bob_Miller" not in raw_bytes(path)
    assert j.get("j-1").path_hmac == path_hmac(load_or_create_key(path.parent), "cam", NAME)
    assert j.offer("cam", NAME, FileStat(1, 1, 1)) is None  # still recognised as kept
    j.close()


def test_journal_files_are_0600_and_a_new_state_folder_0700_whatever_the_umask(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    path = tmp_path / "var" / "state" / "journal.sqlite3"
    old = os.umask(0)
    try:
        j = Journal(path)
        j.offer("cam", "a.jpg", STAT)  # makes SQLite create -wal and -shm
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        folders = [stat.S_IMODE(p.stat().st_mode) for p in (path.parent, path.parent.parent)]
        j.close()
    finally:
        os.umask(old)
    assert modes == {
        "journal.sqlite3": 0o600,
        "journal.sqlite3-wal": 0o600,
        "journal.sqlite3-shm": 0o600,
        KEY_FILE: 0o600,
    }
    assert folders == [0o700, 0o700]
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755  # an existing folder is left alone


def test_a_journal_an_older_version_left_world_readable_is_tightened(path: Path) -> None:
    Journal(path).close()
    os.chmod(path, 0o644)
    Journal(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_audit_backfill_still_has_what_it_needs_and_the_name_goes_once_the_line_is_written(
    tmp_path: Path, path: Path
) -> None:
    # A quarantined job whose audit line could not be written (audit_dir full): the real Lifecycle's
    # write_missing_audit writes it later, naming the file by the same HMAC the journal keeps.
    from anonymizer.audit.log import AuditLog, verify
    from anonymizer.daemon.job import Lifecycle
    from anonymizer.logs import get_logger
    from anonymizer.settings.daemon import RetryPolicy

    j = Journal(path)
    job_id = j.offer("cam", NAME, STAT)
    j.claim(["cam"])
    j.mark_quarantined(job_id, "UnsupportedMediaError: file is empty (0 bytes)")
    chain_key = b"c" * 32
    audit = AuditLog(tmp_path / "audit", key=chain_key)
    lifecycle = Lifecycle(
        journal=j,
        audit=audit,
        hmac_key=load_or_create_key(path.parent),
        engine_for=lambda profile: None,  # type: ignore[arg-type,return-value]
        retry=RetryPolicy(),
        log=get_logger(),
    )
    assert lifecycle.write_missing_audit({}) == 1
    (line,) = [x for x in audit.path.read_text().splitlines()]
    assert f'"path_hmac":"{j.get(job_id).path_hmac}"' in line and "Anna" not in line
    assert j.get(job_id).audited == 1 and j.get(job_id).rel_path == ""
    assert leaks(path) == []
    assert verify(audit.path, key=chain_key).ok
    j.close()


def test_a_retired_output_is_found_again_by_the_hmac_of_its_name(tmp_path: Path, path: Path) -> None:
    # The same content dropped again under another name reuses the earlier output: once the
    # journal has erased that output's name, the worker finds it by walking the output folder's
    # names against the kept HMAC (no stat or hash of the other files).
    from anonymizer.fsutil import find_by_name_hmac

    out = tmp_path / "out"
    (out / "visitors").mkdir(parents=True)
    (out / "visitors" / "Anna_Schmidt_passport.jpg").write_bytes(b"anonymized")
    (out / "visitors" / "other.jpg").write_bytes(b"other")
    (out / ".anonymizer-tmp-j-1.jpg").write_bytes(b"temporary")
    (out / "link.jpg").symlink_to(out / "visitors" / "Anna_Schmidt_passport.jpg")
    j = Journal(path)
    job_id = j.offer("cam", NAME, STAT)
    finish(j, job_id)
    j.mark_audited(job_id)
    j.mark_retired(job_id, "kept")
    job = j.get(job_id)
    assert job.output_rel is None and leaks(path) == []
    key = load_or_create_key(path.parent)
    assert job.output_hmac == path_hmac(key, "cam", NAME)

    def name_hmac(rel: str) -> str:
        return path_hmac(key, "cam", rel)

    assert find_by_name_hmac(out, name_hmac, job.output_hmac) == NAME
    # Neither a symlink nor one of our temporaries counts; an unknown HMAC finds nothing.
    assert find_by_name_hmac(out, name_hmac, name_hmac("link.jpg")) is None
    assert find_by_name_hmac(out, name_hmac, name_hmac(".anonymizer-tmp-j-1.jpg")) is None
    assert find_by_name_hmac(out, name_hmac, "0" * 64) is None
    # One folder only (the API's and the buckets' lookup, beside the source's own name).
    assert find_by_name_hmac(out, name_hmac, job.output_hmac, under="visitors", recursive=False) == NAME
    assert find_by_name_hmac(out, name_hmac, job.output_hmac, recursive=False) is None
    # The job's output as every caller finds it: the erased name by its HMAC, a kept name as is.
    assert find_output_rel(job, out, key) == NAME
    assert find_output_rel(job, out, key, recursive=False) is None
    assert find_output_rel(dataclasses.replace(job, output_rel="kept/name.jpg"), out, key) == "kept/name.jpg"
    assert find_output_rel(dataclasses.replace(job, output_hmac=None), out, key) is None
    j.close()
