"""The ``reviews`` table: a hold, a decision recorded once, a new round after a rejection with masks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from anonymizer.store import FileStat, Journal, ReviewStore, journal_path

KEY = b"k" * 32


@pytest.fixture
def held(tmp_path: Path) -> tuple[Path, str]:
    """A journal with one job held for review; return (journal path, job id)."""
    path = journal_path(tmp_path / "state")
    journal = Journal(path, hmac_key=KEY)
    job_id = journal.offer("cams", "c.jpg", FileStat(1, 1, 1))
    assert job_id is not None and journal.claim(["cams"]) is not None
    store = ReviewStore(path)
    store.hold(job_id, "cams", "output.jpg", now=10.0)
    store.close()
    job = journal.get(job_id)
    assert job is not None and job.state == "review"  # the hold moves the job itself
    assert journal.claim(["cams"]) is None  # never claimed while held
    journal.close()
    return path, job_id


def test_a_hold_waits_and_a_decision_is_recorded_once(held: tuple[Path, str]) -> None:
    path, job_id = held
    store = ReviewStore(path)
    try:
        [review] = store.waiting()
        assert (review.job_id, review.state, review.rounds, review.copy_name) == (job_id, "waiting", 1, "output.jpg")
        assert store.copy_dir(job_id) == path.parent / "review" / job_id
        assert store.decide(job_id, "approved", "dpo-1", now=20.0) == "recorded"
        assert store.decide(job_id, "rejected", "dpo-2", now=21.0) == "approved"  # nothing left to decide
        assert store.decide("j-nope", "approved", "dpo-1", now=22.0) == "unknown"
        [decided] = store.decided()
        assert (decided.state, decided.operator, decided.decided_at) == ("approved", "dpo-1", 20.0)
        store.applied(job_id, "published", now=30.0)
        assert store.decided() == [] and store.waiting() == []
        row = store.job_row(job_id)
        assert row is not None and row["state"] == "review"  # the daemon, not the table, finishes the job
    finally:
        store.close()


def test_a_rejection_with_masks_runs_again_and_is_held_for_a_second_round(held: tuple[Path, str]) -> None:
    path, job_id = held
    masks = "regions: []\n"
    store = ReviewStore(path)
    try:
        assert store.decide(job_id, "rejected", "dpo-1", now=20.0, masks_yaml=masks) == "recorded"
        assert store.rerun_masks(job_id) is None  # not before the daemon applied the rejection
        store.applied(job_id, "rerun", now=21.0)
        assert store.rerun_masks(job_id) == (masks, hashlib.sha256(masks.encode()).hexdigest())
        store.hold(job_id, "cams", "output.jpg", now=40.0)
        review = store.get(job_id)
        assert review is not None
        assert (review.state, review.rounds, review.held_at, review.applied_at) == ("waiting", 2, 40.0, None)
        assert review.operator == "dpo-1"  # the last decision's, until the next one (issue 25)
    finally:
        store.close()


def test_a_read_only_store_sees_decisions_and_changes_nothing(held: tuple[Path, str]) -> None:
    path, job_id = held
    reader = ReviewStore(path, readonly=True)
    try:
        assert [r.job_id for r in reader.all()] == [job_id]
        with pytest.raises(Exception, match="readonly"):
            reader.decide(job_id, "approved", "dpo-1", now=20.0)
    finally:
        reader.close()
