"""Journal: bounded retention tries with a held final state, quarantine attempts, reusable results."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support import FakeClock

from anonymizer.store import RETENTION_HELD, FileStat, Journal

STAT = FileStat(size=100, mtime_ns=5, inode=42)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal(tmp_path: Path, clock: FakeClock):
    j = Journal(tmp_path / "journal.sqlite3", clock=clock)
    yield j
    j.close()


def finished(j: Journal, rel: str, key: str, *, output_rel: str | None = None) -> str:
    job_id = j.offer("vms", rel, STAT)
    assert job_id is not None
    j.claim(["vms"])
    j.set_hash(job_id, "a" * 64, key)
    j.mark_done(
        job_id,
        outcome="anonymized",
        output_rel=output_rel or rel,
        output_sha256="b" * 64,
        output_size=10,
        summary={"kind": "image"},
        retain_after=0.0,
    )
    j.mark_audited(job_id)
    return job_id


def test_retention_tries_back_off_then_hold_the_source_for_good(journal: Journal, clock: FakeClock) -> None:
    job_id = finished(journal, "cam/a.jpg", "k1")
    assert [j.id for j in journal.due_for_retention()] == [job_id]
    assert journal.retention_failed(job_id, "the recorded output is not in the output folder", 30.0, 3) == 1
    assert journal.due_for_retention() == []  # waits for its backoff
    clock.now += 31
    assert [j.id for j in journal.due_for_retention()] == [job_id]
    assert journal.retention_failed(job_id, "still missing", 60.0, 3) == 2
    clock.now += 61
    assert journal.retention_failed(job_id, "still missing", 120.0, 3) == 3
    clock.now += 10**9
    assert journal.due_for_retention() == []  # held: never due again
    job = journal.get(job_id)
    assert (job.state, job.retention, job.retention_attempts) == ("done", RETENTION_HELD, 3)
    assert [j.id for j in journal.retention_problems()] == [job_id]
    assert journal.source_counts() == {RETENTION_HELD: 1}
    assert journal.held_by_folder() == {"vms": 1}
    # The held source is still there: a rescan must not queue it again.
    assert journal.offer("vms", "cam/a.jpg", STAT) is None


def test_quarantine_records_how_many_attempts_were_made(journal: Journal) -> None:
    job_id = journal.offer("vms", "bad.jpg", STAT)
    journal.claim(["vms"])
    journal.mark_quarantined_after(job_id, "not a photo", 1)
    assert (journal.get(job_id).state, journal.get(job_id).attempts) == ("quarantined", 1)


def test_reusable_results_are_this_folder_s_finished_jobs_with_the_key_newest_first(
    journal: Journal, clock: FakeClock
) -> None:
    first = finished(journal, "a.jpg", "same")
    clock.now += 1
    second = finished(journal, "b.jpg", "same")
    finished(journal, "c.jpg", "other")
    other_folder = journal.offer("elsewhere", "a.jpg", STAT)
    journal.claim(["elsewhere"])
    journal.set_hash(other_folder, "a" * 64, "same")
    newcomer = journal.offer("vms", "d.jpg", FileStat(1, 2, 3))
    assert [j.id for j in journal.find_reusable_results("same", "vms", exclude=newcomer)] == [second, first]
    assert [j.id for j in journal.find_reusable_results("same", "vms", exclude=second)] == [first]


def test_a_journal_from_before_the_retention_columns_gets_them_when_the_daemon_opens_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    job_id = finished(j, "a.jpg", "k")
    j.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE jobs DROP COLUMN retention_attempts")
    db.execute("ALTER TABLE jobs DROP COLUMN retention_error")
    db.commit()
    db.close()
    old = Journal(path, readonly=True)  # status on an old journal still reads its jobs
    assert old.get(job_id).retention_attempts == 0
    old.close()
    j = Journal(path)
    assert j.retention_failed(job_id, "refused", 1.0, 5) == 1
    assert j.get(job_id).retention_error == "refused"
    j.close()
