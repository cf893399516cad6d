"""The scanner's wake-up on local folders (anonymizer/daemon/wakeup.py), through the real daemon."""

from __future__ import annotations

import shutil
import time

import daemon_helpers as dh


def test_a_file_dropped_in_a_local_folder_starts_long_before_the_next_poll(tmp_path):
    # A poll interval of 60 s: only the watchdog wake-up can make the job start within seconds.
    profile = dh.write_fast_profile(tmp_path / "profile.yaml")
    folder = dh.folder_entry(tmp_path, "local", profile, poll_interval_s=60, settle_s=0.5)
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [folder])
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        time.sleep(1.0)  # past the first scan at start-up
        shutil.copy(dh.FACE_SAMPLES[0], tmp_path / "local" / "in" / "a.jpg")
        dropped = time.monotonic()
        dh.wait_for(lambda: (tmp_path / "local" / "out" / "a.jpg").exists(), 30, "the output")
        assert time.monotonic() - dropped < 15, "started by the wake-up, not by the 60 s poll"
        assert daemon.stop() == 0
