"""Retention through the lifecycle: keep, delete or move a source only after its output is
verified, recorded, audited and still in place; a share away or a refusal never loses it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from job_rig import Rig, jpeg

from anonymizer.daemon.retention import apply_retention
from anonymizer.jobs.outcome import Outcome


def test_keep_leaves_the_source_and_records_it_kept(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(retention={"source": "keep"})
    job_id = rig.drop("a.jpg", jpeg(120))
    assert rig.run() is Outcome.ANONYMIZED
    assert rig.lifecycle.retire_due(rig.folders) == 1
    assert (rig.input / "a.jpg").exists()
    assert rig.job(job_id).retention == "kept"
    assert [e["event"] for e in rig.audit_events()] == ["job"]  # 'kept' writes no line


def test_delete_waits_for_its_delay_then_deletes_the_source_of_a_verified_output(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(retention={"source": "delete", "after": "1h"})
    job_id = rig.drop("b.jpg", jpeg(121))
    assert rig.run() is Outcome.ANONYMIZED
    assert rig.lifecycle.retire_due(rig.folders) == 0  # not due yet
    assert (rig.input / "b.jpg").exists()
    rig.now += 3600
    assert rig.lifecycle.retire_due(rig.folders) == 1
    assert not (rig.input / "b.jpg").exists() and (rig.output / "b.jpg").exists()
    assert rig.job(job_id).retention == "deleted"
    assert [e.get("action") for e in rig.audit_events()] == [None, "deleted"]


def test_move_moves_the_source_under_move_to(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(retention={"source": "move", "move_to": "processed"})
    rig.drop("sub/c.jpg", jpeg(122))
    assert rig.run() is Outcome.ANONYMIZED
    assert rig.lifecycle.retire_due(rig.folders) == 1
    assert (rig.root / "processed" / "sub" / "c.jpg").read_bytes() == jpeg(122)
    assert not (rig.input / "sub" / "c.jpg").exists()


def test_a_source_is_never_deleted_when_its_recorded_output_is_gone(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(retention={"source": "delete"})
    job_id = rig.drop("d.jpg", jpeg(123))
    assert rig.run() is Outcome.ANONYMIZED
    (rig.output / "d.jpg").unlink()  # a consumer moved it early, or the share was swapped
    assert rig.lifecycle.retire_due(rig.folders) == 0
    assert (rig.input / "d.jpg").exists()
    job = rig.job(job_id)
    assert job.retention_attempts == 1 and "not in the output folder" in (job.retention_error or "")


def test_a_source_is_never_deleted_before_its_output_is_verified_and_recorded(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(retention={"source": "delete"})
    job_id = rig.drop("e.jpg", jpeg(124))
    rig.engine.error = OSError(5, "Input/output error")
    assert rig.run() is Outcome.RETRY
    assert rig.lifecycle.retire_due(rig.folders) == 0  # nothing recorded: nothing is due
    assert (rig.input / "e.jpg").exists()
    with pytest.raises(ValueError, match="before the output was verified and recorded"):
        apply_retention(rig.job(job_id), rig.folder, original_verified=False)


def test_a_source_not_yet_audited_is_not_retired(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(retention={"source": "delete"})
    rig.drop("f.jpg", jpeg(125))
    rig.audit.path.mkdir()  # the audit log refuses the line (a directory stands in its way)
    assert rig.run() is Outcome.ANONYMIZED  # published and recorded; the line is missing
    rig.audit.path.rmdir()
    assert rig.lifecycle.retire_due(rig.folders) == 0
    assert (rig.input / "f.jpg").exists()
    assert rig.lifecycle.write_missing_audit(rig.folders) == 1  # the main loop's backfill
    assert rig.lifecycle.retire_due(rig.folders) == 1
    assert not (rig.input / "f.jpg").exists()


def test_a_share_away_postpones_retention_without_counting_a_try(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(retention={"source": "delete"})
    job_id = rig.drop("g.jpg", jpeg(126))
    assert rig.run() is Outcome.ANONYMIZED
    rig.lifecycle.guard.mounts[rig.input] = ("/a-mount-that-is-gone", 0, 0)
    assert rig.lifecycle.retire_due(rig.folders) == 0
    assert (rig.input / "g.jpg").exists() and rig.job(job_id).retention_attempts == 0


def test_a_source_replaced_after_it_was_hashed_is_left_in_place(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(retention={"source": "delete"})
    job_id = rig.drop("h.jpg", jpeg(127))
    assert rig.run() is Outcome.ANONYMIZED
    (rig.input / "h.jpg").write_bytes(jpeg(128, (64, 48)))  # new evidence under the same name
    assert rig.lifecycle.retire_due(rig.folders) == 1
    assert rig.job(job_id).retention == "source-changed" and (rig.input / "h.jpg").exists()
