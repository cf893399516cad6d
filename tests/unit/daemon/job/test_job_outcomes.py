"""The lifecycle drives one job to each of its outcomes, with a real journal and a fake engine."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest
from job_rig import ANONYMIZED, Rig, jpeg
from structlog.testing import capture_logs

from anonymizer.audit.log import path_hmac
from anonymizer.daemon.job import StopRequested
from anonymizer.durable import sha256_file
from anonymizer.errors import MediaError
from anonymizer.jobs.outcome import Outcome
from anonymizer.jobs.run import JobOutput


def test_a_job_is_anonymized_published_with_the_output_mode_recorded_and_audited(rig: Rig) -> None:
    job_id = rig.drop("sub/a.jpg", jpeg(100))
    assert rig.run() is Outcome.ANONYMIZED
    out = rig.output / "sub" / "a.jpg"
    assert out.read_bytes() == ANONYMIZED
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    job = rig.job(job_id)
    assert (job.state, job.outcome, job.output_rel, job.audited) == ("done", "anonymized", "sub/a.jpg", 1)
    assert job.output_sha256 == sha256_file(out)[0]
    assert job.summary["timings"]["engine_s"] >= 0
    (event,) = rig.audit_events()
    assert event["job_id"] == job_id and event["outcome"] == "anonymized"
    assert "a.jpg" not in rig.audit.path.read_text()  # names only as an HMAC by default
    assert rig.leftovers() == [] and (rig.input / "sub" / "a.jpg").exists()


def test_an_input_the_engine_refuses_is_quarantined_with_its_reason(rig: Rig) -> None:
    rig.engine.error = MediaError("cannot decode the video")
    job_id = rig.drop("b.jpg", jpeg(101))
    assert rig.run() is Outcome.QUARANTINED
    assert not (rig.input / "b.jpg").exists()
    assert (rig.quarantine / "b.jpg").read_bytes() == jpeg(101)
    assert "cannot decode" in (rig.quarantine / "b.jpg.reason.json").read_text()
    job = rig.job(job_id)
    assert (job.state, job.attempts, job.audited) == ("quarantined", 1, 1)
    assert rig.audit_events()[0]["outcome"] == "quarantined"
    assert list(rig.output.iterdir()) == []


def test_a_file_off_the_allow_list_is_quarantined_before_the_engine_runs(rig: Rig) -> None:
    rig.drop("notes.jpg", b"plain text, not a photo")
    assert rig.run() is Outcome.QUARANTINED
    assert rig.engine.calls == []
    assert (rig.quarantine / "notes.jpg").exists()


def test_a_transient_error_is_retried_later_and_counted_then_quarantined_when_attempts_run_out(rig: Rig) -> None:
    rig.engine.error = OSError(28, "No space left on device")
    job_id = rig.drop("c.jpg", jpeg(102))
    assert rig.run() is Outcome.RETRY
    job = rig.job(job_id)
    assert (job.state, job.attempts) == ("queued", 1) and job.next_attempt_at > rig.now
    assert (rig.input / "c.jpg").exists() and rig.leftovers() == []
    assert rig.journal.claim(["cam"]) is None  # not before its backoff
    rig.now = job.next_attempt_at
    assert rig.run() is Outcome.RETRY
    rig.now = rig.job(job_id).next_attempt_at
    assert rig.run() is Outcome.QUARANTINED  # the third of max_attempts=3
    assert "gave up after 3 attempts" in rig.job(job_id).error
    assert (rig.quarantine / "c.jpg").exists()


def test_an_output_that_is_not_the_verified_file_is_never_published(rig: Rig) -> None:
    job_id = rig.drop("d.jpg", jpeg(103))
    attempt = rig.lifecycle.begin(rig.claim(), rig.folder)
    assert not isinstance(attempt, Outcome)
    assert rig.lifecycle.prepare(attempt) is None
    work = rig.output / "work.jpg"
    work.write_bytes(ANONYMIZED)
    sha, size = sha256_file(work)
    work.write_bytes(ANONYMIZED[:-10])  # changed on the share after the worker verified it
    assert rig.lifecycle.complete(attempt, JobOutput(work, "", {}, 0.1, sha, size)) is Outcome.RETRY
    assert "failed verification" in rig.job(job_id).error
    assert not (rig.output / "d.jpg").exists() and not work.exists()


def test_a_share_that_went_away_defers_the_job_without_counting_an_attempt(rig: Rig) -> None:
    job_id = rig.drop("e.jpg", jpeg(104))
    # As if the output share had been mounted elsewhere at start-up: its path now lies on another mount.
    rig.lifecycle.guard.mounts[rig.output] = ("/a-mount-that-is-gone", 0, 0)
    with capture_logs() as logs:
        assert rig.run() is Outcome.DEFERRED
    job = rig.job(job_id)
    assert (job.state, job.attempts) == ("queued", 0) and job.next_attempt_at > rig.now
    (event,) = [e for e in logs if e["event"] == "job.deferred"]
    assert event["log_level"] == "warning" and 5.0 <= event["retry_in_s"] <= 15.0
    assert "e.jpg" not in str(event)  # the log's reason is the share's error, never the path
    assert (rig.input / "e.jpg").exists() and list(rig.output.iterdir()) == []


def test_a_job_no_worker_can_take_is_deferred_and_never_quarantined(rig: Rig) -> None:
    job_id = rig.drop("f.jpg", jpeg(105))
    attempt = rig.lifecycle.begin(rig.claim(), rig.folder)
    assert not isinstance(attempt, Outcome) and rig.lifecycle.prepare(attempt) is None
    with capture_logs() as logs:
        assert rig.lifecycle.defer(attempt, "models differ") is Outcome.DEFERRED
    job = rig.job(job_id)
    assert (job.state, job.attempts, job.error) == ("queued", 0, "models differ")
    # The first backoff (base_s 10, jittered x0.5..x1.5), as for a first failed try, none counted.
    (event,) = [e for e in logs if e["event"] == "job.worker_refused"]
    assert (event["log_level"], event["reason"]) == ("error", "models differ")
    assert 5.0 <= event["retry_in_s"] <= 15.0 and job.next_attempt_at == pytest.approx(rig.now + event["retry_in_s"], abs=0.05)


def test_a_job_whose_tries_were_all_interrupted_is_quarantined_before_the_engine_runs(rig: Rig) -> None:
    job_id = rig.drop("f2.jpg", jpeg(115))
    for _ in range(3):  # max_attempts=3: each start-up after a crash counts the interrupted try
        rig.claim()
        rig.journal.recover_interrupted()
    assert rig.run() is Outcome.QUARANTINED
    job = rig.job(job_id)
    assert (job.attempts, job.error) == (3, "gave up after 3 attempts; last error: process interrupted")
    assert rig.engine.calls == [] and (rig.quarantine / "f2.jpg").exists()
    assert rig.audit_events()[0]["attempts"] == 3


def test_a_source_changed_after_it_settled_has_vanished_and_nothing_is_published(rig: Rig) -> None:
    job_id = rig.drop("g.jpg", jpeg(106))
    job = rig.claim()
    (rig.input / "g.jpg").write_bytes(jpeg(107, (40, 30)))  # the writer was not done
    assert rig.lifecycle.run(job, rig.folder) is Outcome.VANISHED
    assert rig.job(job_id).state == "vanished" and rig.engine.calls == []


def test_a_folder_swapped_for_a_symlink_after_the_scan_is_never_read_nor_quarantined(rig: Rig, tmp_path) -> None:
    # Between scan and claim someone replaces a folder on the path with a link to elsewhere: the
    # lifecycle must not follow it, neither to read the file nor to move it to quarantine.
    job_id = rig.drop("cams/s.jpg", jpeg(111))
    job = rig.claim()
    elsewhere = tmp_path / "elsewhere"
    (rig.input / "cams").rename(elsewhere)
    (rig.input / "cams").symlink_to(elsewhere, target_is_directory=True)
    assert rig.lifecycle.run(job, rig.folder) is Outcome.VANISHED
    assert rig.job(job_id).state == "vanished" and rig.engine.calls == []
    assert (elsewhere / "s.jpg").read_bytes() == jpeg(111) and list(rig.quarantine.iterdir()) == []


def test_a_source_changed_while_it_was_processed_has_vanished_and_its_output_is_dropped(rig: Rig) -> None:
    rig.engine.during = lambda src: src.write_bytes(jpeg(108, (50, 40)))
    job_id = rig.drop("h.jpg", jpeg(109))
    assert rig.run() is Outcome.VANISHED
    assert rig.job(job_id).state == "vanished"
    assert list(rig.output.iterdir()) == []


def test_an_output_the_engine_named_with_an_added_suffix_is_removed_when_the_job_vanishes(rig: Rig) -> None:
    # JPEG content in a file called .png: the engine writes "<temp>.png.jpg". That file, not the
    # planned temp name, is what must go when the job ends without publishing.
    rig.engine.added_suffix = ".jpg"
    rig.engine.during = lambda src: src.write_bytes(jpeg(112, (50, 40)))
    rig.drop("k.png", jpeg(113))
    assert rig.run() is Outcome.VANISHED
    assert list(rig.output.iterdir()) == []


def test_the_same_content_under_another_name_reuses_the_earlier_output_without_the_engine(rig: Rig) -> None:
    first = rig.drop("one.jpg", jpeg(110))
    assert rig.run() is Outcome.ANONYMIZED
    second = rig.drop("copy/two.jpg", jpeg(110))
    assert rig.run() is Outcome.DUPLICATE
    assert len(rig.engine.calls) == 1
    assert (rig.output / "copy" / "two.jpg").read_bytes() == ANONYMIZED
    assert stat.S_IMODE((rig.output / "copy" / "two.jpg").stat().st_mode) == 0o640
    job = rig.job(second)
    assert (job.outcome, job.duplicate_of, job.audited) == ("duplicate", first, 1)
    assert rig.leftovers() == []


def test_an_earlier_output_whose_name_the_journal_erased_is_found_by_its_hmac_and_reused(rig: Rig) -> None:
    first = rig.drop("deep/er/one.jpg", jpeg(116))
    assert rig.run() is Outcome.ANONYMIZED
    rig.journal.mark_retired(first, "kept")  # retired and audited: its names are erased
    assert rig.job(first).output_rel is None and rig.job(first).output_hmac
    second = rig.drop("two.jpg", jpeg(116))
    assert rig.run() is Outcome.DUPLICATE
    assert len(rig.engine.calls) == 1 and (rig.output / "two.jpg").read_bytes() == ANONYMIZED
    assert rig.job(second).duplicate_of == first


def test_an_output_published_before_a_crash_is_adopted_not_made_again(rig: Rig) -> None:
    job_id = rig.drop("i.jpg", jpeg(111))
    rig.claim()
    # The crash came after the output was placed and before 'done' was recorded.
    (rig.output / "i.jpg").write_bytes(ANONYMIZED)
    rig.journal.set_pending_output(job_id, "i.jpg", *sha256_file(rig.output / "i.jpg"), {"kind": "image"})
    rig.journal.requeue(job_id)
    assert rig.run() is Outcome.ANONYMIZED
    assert rig.engine.calls == [] and rig.job(job_id).output_rel == "i.jpg"
    assert sorted(p.name for p in rig.output.iterdir()) == ["i.jpg"]


def test_a_stop_request_requeues_the_job_and_leaves_no_output(rig: Rig) -> None:
    def sigterm_then_progress(src: Path) -> None:
        rig.stop = True
        # The engine's next progress call raises StopRequested (through any except Exception).
        rig.lifecycle.progress("detect", 2, 2)

    rig.engine.during = sigterm_then_progress
    job_id = rig.drop("j.jpg", jpeg(112))
    with pytest.raises(StopRequested):
        rig.run()
    job = rig.job(job_id)
    assert (job.state, job.attempts) == ("queued", 0)
    assert rig.leftovers() == [] and (rig.input / "j.jpg").exists()


def test_a_job_out_of_attempts_is_quarantined_at_begin(rig: Rig) -> None:
    job_id = rig.drop("k.jpg", jpeg(113))
    for _ in range(3):
        rig.journal.claim(["cam"])
        rig.journal.retry_later(job_id, "worker died", 0)
    job = rig.claim()
    assert job.attempts == 3
    assert rig.lifecycle.begin(job, rig.folder) is Outcome.QUARANTINED
    assert rig.job(job_id).attempts == 3 and (rig.quarantine / "k.jpg").exists()


def test_outcomes_are_the_strings_the_journal_and_metrics_have_always_held() -> None:
    assert Outcome.ANONYMIZED == "anonymized" and f"{Outcome.DUPLICATE}" == "duplicate"
    assert [o.value for o in Outcome] == sorted(o.value for o in Outcome)


def remote_output(rig: Rig, name: str, summary: dict) -> JobOutput:
    """What a remote worker hands back: a verified file in the output folder and its summary."""
    work = rig.output / name
    work.write_bytes(ANONYMIZED)
    return JobOutput(work, "", summary, 0.1, *sha256_file(work))


def test_an_output_made_without_the_jobs_sidecar_masks_is_never_published(rig: Rig) -> None:
    job_id = rig.drop("m.jpg", jpeg(114))
    (rig.input / "m.jpg.masks.yaml").write_text("regions:\n  - box: [1, 1, 10, 10]\n")
    attempt = rig.lifecycle.begin(rig.claim(), rig.folder)
    assert not isinstance(attempt, Outcome) and rig.lifecycle.prepare(attempt) is None
    assert attempt.masks is not None
    output = remote_output(rig, "work.jpg", {"kind": "image"})  # a worker that ignored the sidecar
    assert rig.lifecycle.complete(attempt, output) is Outcome.RETRY
    assert "sidecar masks" in rig.job(job_id).error
    assert list(rig.output.iterdir()) == []


def test_an_output_share_that_goes_away_during_the_engine_run_defers_and_publishes_nothing(rig: Rig) -> None:
    job_id = rig.drop("n.jpg", jpeg(115))
    attempt = rig.lifecycle.begin(rig.claim(), rig.folder)
    assert not isinstance(attempt, Outcome) and rig.lifecycle.prepare(attempt) is None
    output = remote_output(rig, "work.jpg", {"kind": "image"})
    rig.lifecycle.guard.mounts[rig.output] = ("/a-mount-that-is-gone", 0, 0)
    assert rig.lifecycle.complete(attempt, output) is Outcome.DEFERRED
    assert rig.job(job_id).attempts == 0
    assert list(rig.output.iterdir()) == []


def test_every_job_line_names_the_job_its_folder_its_source_and_its_input_live_or_backfilled(rig: Rig) -> None:
    def names(event: dict[str, Any]) -> tuple[Any, ...]:
        return (event["event"], event["job_id"], event["folder"], event["path_hmac"], event["input"])

    def expected(job_id: str, rel: str, data: bytes) -> tuple[Any, ...]:
        sha = hashlib.sha256(data).hexdigest()
        return ("job", job_id, "cam", path_hmac(b"k" * 32, "cam", rel), {"sha256": sha, "size": len(data)})

    done = rig.drop("a.jpg", jpeg(130))
    assert rig.run() is Outcome.ANONYMIZED
    rig.engine.error = MediaError("cannot decode the video")
    refused = rig.drop("b.jpg", jpeg(131))
    assert rig.run() is Outcome.QUARANTINED
    rig.engine.error = None
    rig.audit.path.rename(rig.root / "audit.kept")
    rig.audit.path.mkdir()  # the audit log refuses the next two lines (a directory stands in its way)
    late = rig.drop("c.jpg", jpeg(132))
    assert rig.run() is Outcome.ANONYMIZED
    rig.engine.error = MediaError("cannot decode the video")
    late_refused = rig.drop("d.jpg", jpeg(133))
    assert rig.run() is Outcome.QUARANTINED
    rig.audit.path.rmdir()
    (rig.root / "audit.kept").rename(rig.audit.path)
    assert rig.lifecycle.write_missing_audit(rig.folders) == 2  # the main loop's backfill
    events = rig.audit_events()
    assert [names(e) for e in events] == [
        expected(done, "a.jpg", jpeg(130)),
        expected(refused, "b.jpg", jpeg(131)),
        expected(late, "c.jpg", jpeg(132)),
        expected(late_refused, "d.jpg", jpeg(133)),
    ]
    assert [(e["outcome"], e["attempts"], e["output"] is None) for e in events] == [
        ("anonymized", 1, False),
        ("quarantined", 1, True),
        ("anonymized", 1, False),
        ("quarantined", 1, True),
    ]
    assert [e.get("reason") for e in events[1::2]] == ["MediaError: cannot decode the video"] * 2
