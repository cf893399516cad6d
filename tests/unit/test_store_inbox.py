"""The inbox, the one door of the API and the buckets: place a file, read its job, find its output.

Real daemon config, real journal, real files; the daemon's part (running the engine) is played
by recording an outcome in the journal, as the lifecycle does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import daemon_helpers as dh
import pytest

from anonymizer.settings.daemon import load_daemon_config
from anonymizer.store import job_view
from anonymizer.store.inbox import Inbox, Staged, is_partial_name


@pytest.fixture
def inbox(tmp_path: Path):  # type: ignore[no-untyped-def]
    profile = dh.write_fast_profile(tmp_path / "fast.yaml")
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "inbox", profile)])
    box = Inbox(load_daemon_config(config))
    yield box
    box.close()


def submit(inbox: Inbox, data: bytes) -> tuple[str, str]:
    folder = inbox.folder("inbox")
    staged = Staged(folder.input / "api" / "tag")
    staged.write(data)
    sha = staged.finish()
    rel = f"api/tag/{sha}.jpg"
    return inbox.place(folder, staged, rel), rel


def publish(inbox: Inbox, job_id: str, rel: str, data: bytes) -> None:
    """What the daemon does for a job: write its output and record it as done and audited."""
    out = inbox.folder("inbox").output / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    journal = inbox.journal
    assert journal.claim(["inbox"]) is not None
    journal.mark_done(
        job_id,
        outcome="anonymized",
        output_rel=rel,
        output_sha256=hashlib.sha256(data).hexdigest(),
        output_size=len(data),
        summary={"kind": "image", "counts": {"faces": {"regions": 1}}, "boxes": [[1, 2, 3, 4]]},
        retain_after=0.0,
    )
    journal.mark_audited(job_id)


def test_a_placed_file_is_a_queued_job_its_submitter_sees_without_names(inbox: Inbox) -> None:
    job_id, rel = submit(inbox, b"photo bytes")
    job = inbox.job(job_id)
    assert job is not None and job.state == "queued" and job.rel_path == rel
    view = job_view(job, ("kind", "counts"))
    assert (view.state, view.output, view.error) == ("queued", None, None)
    assert inbox.job("j-unknown") is None
    assert job_view(None, ("kind",)).state == "failed"


def test_a_finished_job_s_output_is_found_also_after_its_names_are_forgotten(inbox: Inbox) -> None:
    job_id, rel = submit(inbox, b"photo bytes")
    publish(inbox, job_id, rel, b"anonymized bytes")
    job = inbox.job(job_id)
    assert job is not None
    view = job_view(job, ("kind", "counts"))
    assert view.state == "done" and view.output == {"sha256": job.output_sha256, "size": len(b"anonymized bytes")}
    assert view.summary == {"kind": "image", "counts": {"faces": {"regions": 1}}}  # never the boxes
    folder = inbox.folder("inbox")
    found = inbox.find_output(folder, job, rel)
    assert found is not None and found.path == folder.output / rel
    inbox.retire(job_id, "kept")
    retired = inbox.job(job_id)
    assert retired is not None and retired.state == "retired" and retired.output_rel is None
    found = inbox.find_output(folder, retired, rel)  # by the output's name HMAC
    assert found is not None and found.path == folder.output / rel
    # Only a regular file with the verified bytes is served: not a link to them, nor other bytes.
    out = folder.output / rel
    out.rename(folder.output / "elsewhere.jpg")
    out.symlink_to(folder.output / "elsewhere.jpg")
    assert inbox.find_output(folder, retired, rel) is None
    out.unlink()
    out.write_bytes(b"changed since")
    assert inbox.find_output(folder, retired, rel) is None
    # Only the folder beside the source's name is searched (the API's and buckets' own layout).
    moved = folder.output / "api" / "tag" / "deeper" / Path(rel).name
    moved.parent.mkdir()
    out.unlink()
    (folder.output / "elsewhere.jpg").rename(moved)
    assert inbox.find_output(folder, retired, rel) is None


def test_a_quarantined_job_shows_the_journal_s_reason_and_no_output(inbox: Inbox) -> None:
    job_id, _rel = submit(inbox, b"not a photo")
    inbox.journal.mark_quarantined(job_id, "unsupported media")
    view = job_view(inbox.job(job_id), ("kind",))
    assert (view.state, view.outcome, view.error, view.output) == ("failed", "quarantined", "unsupported media", None)


def test_the_review_table_is_opened_through_the_inbox(inbox: Inbox) -> None:
    job_id, _rel = submit(inbox, b"held bytes")
    reviews = inbox.open_reviews()
    try:
        reviews.hold(job_id, "inbox", "output.jpg", now=5.0)
        assert [r.job_id for r in reviews.waiting()] == [job_id]
    finally:
        reviews.close()
    job = inbox.job(job_id)
    assert job is not None and job_view(job, ()).state == "review"


def test_partials_a_crash_left_are_removed_in_every_subfolder_and_nothing_else(inbox: Inbox) -> None:
    root = inbox.folder("inbox").input / "api"
    crashed = [Staged(root / "tag"), Staged(root / ".hidden-tag"), Staged(root)]
    assert all(is_partial_name(s.path.name) for s in crashed)
    kept = [root / "tag" / "abc.jpg", root / "tag" / ".incoming-abc.jpg", root / "tag" / "x.part"]
    for path in kept:
        path.write_bytes(b"x")
    assert Inbox.remove_partials(root) == 3
    assert sorted(p for p in root.rglob("*") if p.is_file()) == sorted(kept)
    for staged in crashed:
        staged.discard()  # closes the handles; the files are already gone
