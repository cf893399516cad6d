"""The review gate and the decisions: a held output is published only on approval (once, with
the output mode), a rejection publishes nothing and keeps the source, a rejection with masks
runs the job again with them and holds it again."""

from __future__ import annotations

import stat
from collections.abc import Callable

from job_rig import ANONYMIZED, Rig, jpeg

from anonymizer.daemon.job.review import store_for
from anonymizer.jobs.outcome import Outcome

MASKS = "regions:\n  - box: [1, 1, 10, 10]\n"


def held(make_rig: Callable[..., Rig]) -> tuple[Rig, str]:
    rig = make_rig(review="required", retention={"source": "delete"})
    job_id = rig.drop("a.jpg", jpeg(130))
    assert rig.run() is Outcome.HELD
    return rig, job_id


def test_a_held_output_waits_unpublished_with_its_private_copy_and_report(make_rig: Callable[..., Rig]) -> None:
    rig, job_id = held(make_rig)
    assert list(rig.output.iterdir()) == []
    store = store_for(rig.journal)
    (review,) = store.waiting()
    copy = store.copy_dir(job_id) / review.copy_name
    assert copy.read_bytes() == ANONYMIZED and stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert any(p.suffix == ".html" for p in store.copy_dir(job_id).iterdir())
    job = rig.job(job_id)
    assert (job.state, job.output_rel, job.outcome) == ("review", "a.jpg", None)
    assert rig.lifecycle.retire_due(rig.folders) == 0 and (rig.input / "a.jpg").exists()
    assert [e["event"] for e in rig.audit_events()] == ["review"]


def test_an_approval_publishes_once_with_the_output_mode_and_makes_the_source_due(
    make_rig: Callable[..., Rig],
) -> None:
    rig, job_id = held(make_rig)
    store = store_for(rig.journal)
    assert store.decide(job_id, "approved", "dpo", rig.now) == "recorded"
    assert rig.lifecycle.retire_due(rig.folders) == 1  # the approval, then retention (after: 0)
    out = rig.output / "a.jpg"
    assert out.read_bytes() == ANONYMIZED and stat.S_IMODE(out.stat().st_mode) == 0o640
    job = rig.job(job_id)
    assert (job.outcome, job.retention) == ("anonymized", "deleted")
    assert not (rig.input / "a.jpg").exists()
    assert store.get(job_id).state == "published"
    assert [p for p in store.copy_dir(job_id).iterdir() if ".qa." not in p.name] == []  # the report stays
    assert rig.lifecycle.retire_due(rig.folders) == 0  # applied once
    assert sorted(p.name for p in rig.output.iterdir()) == ["a.jpg"]


def test_an_approval_interrupted_after_publishing_adopts_the_output(make_rig: Callable[..., Rig]) -> None:
    rig, job_id = held(make_rig)
    store = store_for(rig.journal)
    copy = store.copy_dir(job_id) / store.get(job_id).copy_name
    (rig.output / "a.jpg").write_bytes(copy.read_bytes())  # published, then the crash
    store.decide(job_id, "approved", "dpo", rig.now)
    rig.lifecycle.retire_due(rig.folders)
    assert sorted(p.name for p in rig.output.iterdir()) == ["a.jpg"]  # not published twice
    assert rig.job(job_id).outcome == "anonymized"


def test_a_rejection_publishes_nothing_and_keeps_the_source(make_rig: Callable[..., Rig]) -> None:
    rig, job_id = held(make_rig)
    store = store_for(rig.journal)
    store.decide(job_id, "rejected", "dpo", rig.now)
    assert rig.lifecycle.retire_due(rig.folders) == 0
    job = rig.job(job_id)
    assert (job.outcome, job.retention, job.audited) == (Outcome.REJECTED, "kept", 1)
    assert list(rig.output.iterdir()) == [] and (rig.input / "a.jpg").exists()
    assert store.get(job_id).state == "closed"
    assert [p for p in store.copy_dir(job_id).iterdir() if ".qa." not in p.name] == []
    assert [e.get("action") for e in rig.audit_events()][-1] == "rejected"


def test_a_rejection_with_masks_runs_the_job_again_with_them_and_holds_it_again(make_rig: Callable[..., Rig]) -> None:
    rig, job_id = held(make_rig)
    store = store_for(rig.journal)
    store.decide(job_id, "rejected", "dpo", rig.now, masks_yaml=MASKS)
    rig.lifecycle.retire_due(rig.folders)
    assert rig.job(job_id).state == "queued" and store.get(job_id).state == "rerun"
    assert rig.run() is Outcome.HELD
    assert rig.engine.masks_seen[0] is None and len(rig.engine.masks_seen[1].regions) == 1
    assert store.get(job_id).state == "waiting" and store.get(job_id).rounds == 2
    assert list(rig.output.iterdir()) == []
