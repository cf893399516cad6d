"""A 4K video under the real daemon: frame progress in `status` at once, SIGTERM obeyed within 10 s.

The second deployment trial (issue 25) found a SIGTERM 30 s into a 4K clip taking 132.6 s to
exit (the unit's TimeoutStopSec=120 would have killed it and counted an attempt), and `status`
saying nothing of the job for its first 172 s: progress ticked only when the tracker released
frames, and stopping waited for the same. Here the real daemon runs the built-in default profile
(recall first: the slowest per frame) on a 4K clip made in the test.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import daemon_helpers as dh

pytestmark = pytest.mark.skipif(not dh.FACE_SAMPLES, reason="samples/faces-*.jpg are missing")

FRAMES = 8  # a 4K frame's detection takes seconds on a CPU: the job is far from done after 3 s


def status_now(config: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    """`anonymizer status --json`, run in this process (a subprocess's start-up would be timed too)."""
    from anonymizer.cli import main

    capsys.readouterr()
    assert main(["status", "--config", str(config), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def started_at(daemon: dh.DaemonProcess) -> float:
    event = next(e for e in daemon.events() if e.get("event") == "job.started")
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def stop_3_s_into_a_4k_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, Path]:
    """Run the daemon on a 4K clip, check its progress, SIGTERM it 3 s in and check the stop.
    Return (config, output folder, clip)."""
    from media_factory import make_video

    from anonymizer.config import BUILTIN_PROFILES_DIR
    from anonymizer.durable import is_temp_name
    from anonymizer.store import Journal

    config = dh.write_daemon_config(
        tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "vms", BUILTIN_PROFILES_DIR / "default.yaml")]
    )
    inp, out = tmp_path / "vms" / "in", tmp_path / "vms" / "out"
    staging = tmp_path / "staging"
    staging.mkdir()
    clip = make_video(staging / "cam-4k.mp4", source=dh.FACE_SAMPLES[0], frames=FRAMES, size=(3840, 2160), fps=8)

    with dh.DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        clip.rename(inp / clip.name)
        dh.wait_for(lambda: "job.started" in daemon.event_names(), 60, "the video job to start")

        # Frame-level progress within 2 s of the job's start: the stage, frames done of all.
        def detecting() -> list[dict]:
            return [r for r in status_now(config, capsys)["running"] if r.get("stage") == "detect"]

        running = dh.wait_for(detecting, 30, "the video's frame progress in status", interval_s=0.05)[0]
        assert running["total"] == FRAMES and 0 <= running["done"] < FRAMES
        # When the daemon put the frame count in the status file (it rewrites the file at once on
        # a stage change); on a 2-core machine shared by several test runs, this test's own
        # polling adds a second or more: printed, not asserted.
        shown_s = running["stage_since"] - started_at(daemon)
        seen_s = time.time() - started_at(daemon)
        print(f"frame progress in status {shown_s:.2f} s after the job started (seen by the test at {seen_s:.2f} s)")
        assert shown_s < 2.0, f"frame progress showed {shown_s:.1f} s after the job started"
        text = dh.run_cli("status", "--config", str(config)).stdout
        assert f"detect {running['done']}/{FRAMES}" in text or f"/{FRAMES}" in text, text

        time.sleep(max(0.0, 3.0 - (time.time() - started_at(daemon))))  # 3 s into the job
        assert dh.files_under(out) == [], "the clip finished within 3 s (make it longer)"
        stop_sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.proc.wait(60)
        stop_s = time.monotonic() - stop_sent
        print(f"SIGTERM to exit 3 s into a {FRAMES}-frame 4K clip (default profile): {stop_s:.2f} s")
        assert code == 0, daemon.logs()
        assert stop_s < 10.0, f"stop took {stop_s:.1f} s"
        names = daemon.event_names()
        assert "job.requeued" in names and "daemon.stopped" in names

    # Requeued with no attempt counted, nothing half-written left behind (the engine's and the
    # job's temporaries are removed as the job stops, not at the next start).
    assert dh.files_under(out) == []
    assert [p for p in tmp_path.rglob("*") if is_temp_name(p.name)] == []
    journal = Journal(tmp_path / "state" / "journal.sqlite3", readonly=True)
    try:
        (job,) = list(journal.jobs())
    finally:
        journal.close()
    assert (job.state, job.attempts) == ("queued", 0)

    return config, out, clip


def test_sigterm_3_s_into_a_4k_video_exits_0_within_10_s_and_requeues_it_without_an_attempt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stop_3_s_into_a_4k_clip(tmp_path, capsys)


@pytest.mark.slow
def test_a_4k_video_stopped_by_sigterm_is_finished_by_the_next_start_on_its_first_attempt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from anonymizer.config import BUILTIN_PROFILES_DIR
    from anonymizer.durable import is_temp_name

    config, out, clip = stop_3_s_into_a_4k_clip(tmp_path, capsys)
    # A restart finishes it: one output, on the first attempt. (With the VMS profile, cctv-fast,
    # which 4K exports would use: the default profile takes minutes on 8 frames of 4K on a CPU.)
    folder = dh.folder_entry(tmp_path, "vms", BUILTIN_PROFILES_DIR / "cctv-fast.yaml")
    dh.write_daemon_config(config, [folder])
    with dh.DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        dh.wait_for(lambda: dh.audit_lines(tmp_path / "audit"), 900, "the requeued clip's audit line")
        assert daemon.stop() == 0
    (output,) = dh.files_under(out)
    assert output.name == clip.name
    assert [p for p in tmp_path.rglob("*") if is_temp_name(p.name)] == []
    finished = dh.audit_lines(tmp_path / "audit")
    assert [(line["outcome"], line["attempts"]) for line in finished] == [("anonymized", 1)]
