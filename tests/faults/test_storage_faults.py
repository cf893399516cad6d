"""Storage faults under the real daemon: full disk, read-only folders, missing quarantine, bad state dir.

Tests run as root here, and chmod does not stop root, so faults are real mounts: a small tmpfs
filled up (ENOSPC) and read-only bind mounts (EROFS). Each test unmounts in ``finally``. Where
mounting is not allowed (no root, no CAP_SYS_ADMIN) the mount-based tests skip.

What must hold: a job that cannot write is retried with backoff (attempts counted in the journal,
the source untouched, no partial file left eating the space), finishes once the storage is back,
and nothing is lost; a daemon whose state dir is unusable refuses to start with a clear message.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import daemon_helpers as dh
import helpers as h
import hostile
import pytest

TIMEOUT_S = 90
PATIENT_RETRY = {"max_attempts": 30, "base_s": 0.3, "max_s": 1.0}
needs_mount = pytest.mark.skipif(not h.can_mount(), reason="needs root with CAP_SYS_ADMIN to mount tmpfs/bind mounts")


def _attempts(rig: h.Rig, rel: str) -> int:
    job = h.job_for(rig, rel)
    return job["attempts"] if job else 0


@needs_mount
def test_a_full_output_disk_is_retried_with_backoff_and_the_job_completes_once_space_returns(tmp_path: Path) -> None:
    with h.rig_at(tmp_path, retention={"source": "delete"}, retry=PATIENT_RETRY) as rig, h.mounted(rig.out):
        h.mount_tmpfs(rig.out, "512k")
        filler = rig.out / "filler.bin"
        with open(filler, "wb") as fh:  # fill the disk to the last block
            try:
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            except OSError:
                pass
        daemon = rig.daemon()
        source = rig.inp / "gate.jpg"
        shutil.copyfile(dh.FACE_SAMPLES[0], source)
        sha = h.sha256(source)
        h.wait_serving(daemon, lambda: _attempts(rig, "gate.jpg") >= 2, TIMEOUT_S, "two failed attempts")
        job = h.job_for(rig, "gate.jpg")
        assert job["state"] in ("queued", "running") and "space" in (job["error"] or "").lower(), h._brief([job])
        assert source.exists() and h.sha256(source) == sha, "the source was touched while the disk was full"
        assert [p.name for p in rig.out.iterdir()] == ["filler.bin"], "a partial output was left on the full disk"

        filler.unlink()
        h.wait_serving(
            daemon, lambda: h.all_final(rig, 1) and not source.exists(), TIMEOUT_S, "the job after space returned"
        )
        assert daemon.stop() == 0
        ledger = h.check_nothing_lost(rig, {"gate.jpg": sha})
        assert ledger.retired[sha] == "deleted"


@needs_mount
def test_a_read_only_output_folder_is_retried_and_nothing_is_lost(tmp_path: Path) -> None:
    with h.rig_at(tmp_path, retention={"source": "delete"}, retry=PATIENT_RETRY) as rig, h.mounted(rig.out):
        h.bind_readonly(rig.out)
        daemon = rig.daemon()
        source = rig.inp / "gate.jpg"
        shutil.copyfile(dh.FACE_SAMPLES[1], source)
        sha = h.sha256(source)
        h.wait_serving(daemon, lambda: _attempts(rig, "gate.jpg") >= 2, TIMEOUT_S, "two failed attempts")
        assert "read-only" in (h.job_for(rig, "gate.jpg")["error"] or "").lower()
        assert h.sha256(source) == sha

        h.umount(rig.out)  # the share comes back writable
        h.wait_serving(daemon, lambda: h.all_final(rig, 1) and not source.exists(), TIMEOUT_S, "the job after remount")
        assert daemon.stop() == 0
        h.check_nothing_lost(rig, {"gate.jpg": sha})


@needs_mount
def test_an_unwritable_quarantine_keeps_the_bad_file_in_place_until_it_can_be_moved(tmp_path: Path) -> None:
    with h.rig_at(tmp_path, retry=PATIENT_RETRY) as rig, h.mounted(rig.quarantine):
        h.bind_readonly(rig.quarantine)
        daemon = rig.daemon()
        junk = rig.inp / "junk.mp4"
        junk.write_bytes(b"not a video at all\n" * 10)
        sha = h.sha256(junk)
        h.wait_serving(daemon, lambda: _attempts(rig, "junk.mp4") >= 2, TIMEOUT_S, "two failed quarantine attempts")
        assert junk.exists() and h.sha256(junk) == sha, "a file that could not be quarantined was not left in place"

        h.umount(rig.quarantine)
        h.wait_serving(daemon, lambda: h.all_final(rig, 1), TIMEOUT_S, "the quarantine after remount")
        assert daemon.stop() == 0
        h.check_nothing_lost(rig, {"junk.mp4": sha}, expect_quarantined={"junk.mp4"})


def test_a_quarantine_folder_removed_while_running_is_recreated(tmp_path: Path) -> None:
    with h.rig_at(tmp_path) as rig:
        daemon = rig.daemon()
        shutil.rmtree(rig.quarantine)
        junk = rig.inp / "junk.mp4"
        junk.write_text("#EXTM3U\n/etc/passwd\n")
        sha = h.sha256(junk)
        h.wait_serving(daemon, lambda: h.all_final(rig, 1), TIMEOUT_S, "the junk file to be handled")
        assert daemon.stop() == 0
        h.check_nothing_lost(rig, {"junk.mp4": sha}, expect_quarantined={"junk.mp4"})


@needs_mount
@pytest.mark.parametrize("which", ["state", "audit"])
def test_a_read_only_state_or_audit_dir_at_start_up_is_refused_with_a_clear_message(tmp_path: Path, which: str) -> None:
    with h.rig_at(tmp_path) as rig, h.mounted(getattr(rig, which)):
        target = getattr(rig, which)
        target.mkdir()
        h.bind_readonly(target)
        daemon = rig.daemon(wait_ready=False)
        h.wait_for(lambda: daemon._died() or daemon.saw("READY=1"), 60, "the daemon to start or refuse")
        assert not daemon.saw("READY=1"), "the daemon started with an unwritable " + which + " dir"
        assert daemon.proc.wait(30) != 0
        logs = daemon.logs()
        last = [line for line in logs.splitlines() if line.strip()][-1]
        assert "Traceback" not in logs, f"a traceback instead of a clear message:\n{logs[-2000:]}"
        assert f"{which}_dir" in last and ("read-only" in last.lower() or "writable" in last.lower()), last


def test_a_state_dir_that_is_a_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with h.rig_at(tmp_path) as rig:
        rig.state.write_text("not a folder\n")
        daemon = rig.daemon(wait_ready=False)
        code = daemon.proc.wait(60)
        logs = daemon.logs()
        assert code != 0 and not daemon.saw("READY=1")
        assert "Traceback" not in logs, f"a traceback instead of a clear message:\n{logs[-2000:]}"
        assert "state_dir" in logs


def _bind(backing: Path, target: Path) -> None:
    subprocess.run(["mount", "--bind", str(backing), str(target)], check=True)


@needs_mount
def test_an_input_share_that_disappears_mid_job_and_returns_loses_nothing(tmp_path: Path) -> None:
    # A share (here a bind mount) dropped while a job reads from it, then mounted again.
    clip = hostile.make_gradient_video(tmp_path / "clip.mp4", size_wh=(320, 180), frames=60)
    with h.rig_at(tmp_path, retention={"source": "delete"}, retry=PATIENT_RETRY) as rig, h.mounted(rig.inp):
        backing = tmp_path / "share"
        backing.mkdir()
        _bind(backing, rig.inp)
        daemon = rig.daemon()
        shutil.copyfile(clip, rig.inp / "Dana-hallway.mp4")
        sha = h.sha256(clip)
        h.wait_serving(
            daemon,
            lambda: (h.job_for(rig, "Dana-hallway.mp4") or {}).get("input_sha256"),
            TIMEOUT_S,
            "the video to be running",
        )
        h.umount(rig.inp)  # the share goes away
        h.wait_serving(daemon, lambda: h.all_final(rig, 1), TIMEOUT_S, "the interrupted job to end")
        assert list(rig.out.rglob("*.mp4")) == [], "an output was published from a vanished share"
        _bind(backing, rig.inp)  # the share comes back
        h.wait_serving(
            daemon,
            lambda: h.all_final(rig, 2) and not (backing / "Dana-hallway.mp4").exists(),
            TIMEOUT_S,
            "the file to be processed after the share returned",
        )
        assert daemon.stop() == 0
        h.check_nothing_lost(rig, {"Dana-hallway.mp4": sha})


@needs_mount
def test_an_output_share_that_disappears_mid_job_never_leads_to_a_deleted_source(tmp_path: Path) -> None:
    # If the output share drops while a video is processed, paths resolve to the bare mount point
    # on the local disk: an output "published" there is hidden once the share returns. The source
    # must not be retired on the strength of such an output.
    clip = hostile.make_gradient_video(tmp_path / "clip.mp4", size_wh=(320, 180), frames=60)
    with h.rig_at(tmp_path, retention={"source": "delete"}, retry=PATIENT_RETRY) as rig, h.mounted(rig.out):
        backing = tmp_path / "outshare"
        backing.mkdir()
        _bind(backing, rig.out)
        daemon = rig.daemon()
        shutil.copyfile(clip, rig.inp / "Eve-stairs.mp4")
        sha = h.sha256(clip)
        h.wait_serving(
            daemon,
            lambda: (h.job_for(rig, "Eve-stairs.mp4") or {}).get("input_sha256"),
            TIMEOUT_S,
            "the video to be running",
        )
        h.umount(rig.out)  # the output share goes away mid-job...
        time.sleep(3.0)  # ...long enough for the job to end one way or the other
        _bind(backing, rig.out)  # and comes back
        h.wait_serving(daemon, lambda: h.all_final(rig, 1) and h.retired_all(rig), TIMEOUT_S, "the job to settle")
        assert daemon.stop() == 0
        h.check_nothing_lost(rig, {"Eve-stairs.mp4": sha})
