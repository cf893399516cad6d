"""The SQLite job journal: states, idempotency key, retries with backoff, crash recovery."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from support import FakeClock

from anonymizer import store as module
from anonymizer.jobs.backoff import backoff_s
from anonymizer.store import FileStat, Journal


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def journal(tmp_path: Path, clock: FakeClock) -> Journal:
    j = Journal(tmp_path / "journal.sqlite3", clock=clock)
    yield j
    j.close()


STAT = FileStat(size=100, mtime_ns=5, inode=42)


def finish(j: Journal, job_id: str, key: str, *, outcome: str = "anonymized", retain_after: float = 0.0) -> None:
    j.set_hash(job_id, "a" * 64, key)
    j.mark_done(
        job_id,
        outcome=outcome,
        output_rel="x.jpg",
        output_sha256="b" * 64,
        output_size=1,
        summary={"kind": "image"},
        retain_after=retain_after,
    )


def test_the_journal_uses_wal_and_synchronous_full(journal: Journal) -> None:
    assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_file_version_is_offered_once_and_a_new_version_of_a_finished_file_is_a_new_job(journal: Journal) -> None:
    first = journal.offer("f", "a.jpg", STAT)
    assert first is not None
    assert journal.offer("f", "a.jpg", STAT) is None
    claimed = journal.claim(["f"])
    assert claimed is not None and claimed.id == first
    finish(journal, first, "k1")
    assert journal.offer("f", "a.jpg", STAT) is None  # done: the same version is known
    new = journal.offer("f", "a.jpg", FileStat(size=101, mtime_ns=6, inode=42))
    assert new is not None and new != first


def test_a_queued_job_is_updated_in_place_when_its_file_changes_before_it_runs(journal: Journal) -> None:
    job_id = journal.offer("f", "a.jpg", STAT)
    assert journal.offer("f", "a.jpg", FileStat(200, 9, 42)) is None
    job = journal.get(job_id)
    assert job is not None and job.stat == FileStat(200, 9, 42)
    assert journal.counts()["queued"] == 1


def test_claim_takes_only_due_jobs_of_the_given_folders_oldest_first(journal: Journal, clock: FakeClock) -> None:
    a = journal.offer("f", "a.jpg", STAT)
    clock.now += 1
    b = journal.offer("f", "b.jpg", STAT)
    c = journal.offer("other", "c.jpg", STAT)
    journal.claim(["f"])  # a
    journal.retry_later(a, "boom", delay_s=60)
    assert journal.claim(["f"]).id == b  # a is not due yet
    assert journal.claim(["f"]) is None
    clock.now += 61
    assert journal.claim(["f"]).id == a
    assert journal.claim(["other"]).id == c


def test_recovering_interrupted_jobs_requeues_them_and_counts_the_attempt(tmp_path: Path, clock: FakeClock) -> None:
    j = Journal(tmp_path / "j.sqlite3", clock=clock)
    job_id = j.offer("f", "a.jpg", STAT)
    j.claim(["f"])
    j.close()  # the process dies while the job runs
    j2 = Journal(tmp_path / "j.sqlite3", clock=clock)
    recovered = j2.recover_interrupted()
    assert [r.id for r in recovered] == [job_id]
    job = j2.get(job_id)
    assert job.state == "queued" and job.attempts == 1
    j2.close()


def test_requeue_after_a_graceful_stop_does_not_count_an_attempt(journal: Journal) -> None:
    job_id = journal.offer("f", "a.jpg", STAT)
    journal.claim(["f"])
    journal.requeue(job_id)
    job = journal.get(job_id)
    assert job.state == "queued" and job.attempts == 0 and job.next_attempt_at == 0


def test_backoff_grows_exponentially_is_capped_and_jittered_between_half_and_one_and_a_half() -> None:
    rng = random.Random(1)
    for attempt, nominal in [(1, 10), (2, 20), (3, 40), (4, 80), (10, 100)]:
        delays = [backoff_s(attempt, 10, 100, rng=rng) for _ in range(200)]
        assert nominal * 0.5 <= min(delays) and max(delays) <= nominal * 1.5
        assert max(delays) - min(delays) > nominal * 0.5  # it really is jittered


def test_the_idempotency_key_depends_on_input_profile_and_models_but_not_model_order() -> None:
    key = module.job_key("i" * 64, "p" * 64, ["m1", "m2"])
    assert key == module.job_key("i" * 64, "p" * 64, ["m2", "m1"])
    assert key != module.job_key("j" * 64, "p" * 64, ["m1", "m2"])
    assert key != module.job_key("i" * 64, "q" * 64, ["m1", "m2"])
    assert key != module.job_key("i" * 64, "p" * 64, ["m1", "m3"])


def test_only_anonymized_finished_jobs_count_as_the_original_of_a_duplicate(journal: Journal) -> None:
    a = journal.offer("f", "a.jpg", STAT)
    b = journal.offer("f", "b.jpg", STAT)
    journal.claim(["f"])
    journal.set_hash(a, "a" * 64, "same-key")
    journal.mark_quarantined(a, "bad")
    assert journal.find_done_by_key("same-key", exclude=b) is None
    c = journal.offer("f", "c.jpg", STAT)
    finish(journal, c, "same-key")
    assert journal.find_done_by_key("same-key", exclude=b).id == c
    assert journal.find_done_by_key("same-key", exclude=c) is None


def test_retention_is_due_only_for_audited_done_jobs_whose_delay_has_passed(journal: Journal, clock: FakeClock) -> None:
    a = journal.offer("f", "a.jpg", STAT)
    finish(journal, a, "k", retain_after=clock.now + 3600)
    journal.mark_audited(a)
    b = journal.offer("f", "b.jpg", STAT)
    finish(journal, b, "k2", retain_after=clock.now)
    assert journal.due_for_retention() == []  # a: too early; b: not audited yet
    journal.mark_audited(b)
    assert [j.id for j in journal.due_for_retention()] == [b]
    clock.now += 3600
    assert sorted(j.id for j in journal.due_for_retention()) == sorted([a, b])
    journal.mark_retired(a, "deleted")
    assert [j.id for j in journal.due_for_retention()] == [b]


def test_a_second_connection_sees_committed_jobs_at_once(tmp_path: Path, clock: FakeClock) -> None:
    writer = Journal(tmp_path / "j.sqlite3", clock=clock)
    reader = Journal(tmp_path / "j.sqlite3", readonly=True)
    writer.offer("f", "a.jpg", STAT)
    assert reader.queue_depth() == 1
    with pytest.raises(sqlite3.OperationalError):
        reader._db.execute("DELETE FROM jobs")
    writer.close()
    reader.close()


def test_a_new_file_reusing_the_path_and_stat_of_a_deleted_source_is_offered_again(journal: Journal) -> None:
    # ext4 reuses freed inodes, and `cp -p` / rsync keep mtime: the new file can look identical.
    first = journal.offer("f", "a.jpg", STAT)
    journal.claim(["f"])
    finish(journal, first, "k")
    journal.mark_audited(first)
    journal.mark_retired(first, "deleted")
    assert journal.offer("f", "a.jpg", STAT) not in (None, first)


def test_a_kept_source_stays_known_after_retirement(journal: Journal) -> None:
    first = journal.offer("f", "a.jpg", STAT)
    journal.claim(["f"])
    finish(journal, first, "k")
    journal.mark_audited(first)
    journal.mark_retired(first, "kept")
    assert journal.offer("f", "a.jpg", STAT) is None


def test_a_name_that_is_not_valid_utf8_round_trips_through_the_journal(journal: Journal) -> None:
    # What os.scandir returns for the bytes b"cam\xff/clip.mp4" on a Linux share.
    raw_name = b"cam\xff/clip.mp4".decode("utf-8", "surrogateescape")
    job_id = journal.offer("f", raw_name, STAT)
    assert job_id is not None
    assert journal.offer("f", raw_name, STAT) is None
    assert journal.claim(["f"]).rel_path == raw_name
    assert module.display_rel(raw_name) == "cam\\xff/clip.mp4"
    assert module.decode_rel(module.encode_rel("plain/ok.jpg")) == "plain/ok.jpg"
