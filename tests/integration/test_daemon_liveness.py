"""A long photo job under a real notify socket: the watchdog stays fed, SIGTERM is honoured at once.

The trial in issue 16 found a 24 MP photo taking 443 s with the default profile, sending no
WATCHDOG=1 meanwhile (WatchdogSec=300 kills it) and ignoring SIGTERM until it finished. Here the
real daemon runs the built-in default profile on a real 24 MP photo, with a 10 s watchdog (the
daemon then pings every 2 s), and the test reads the datagrams a real unix socket receives, as
systemd would. (On a 2-core machine at load 15, one ping in 70 came 4 s late: a 2 s watchdog would
be a test of the scheduler, not of the daemon.)
"""

from __future__ import annotations

import itertools
import signal
import sys
import time
from pathlib import Path

import cv2
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import daemon_helpers as dh
from daemon_helpers import status

PLATES = sorted(dh.SAMPLES.glob("plate-*.jpg"))
pytestmark = pytest.mark.skipif(not PLATES, reason="samples/plate-*.jpg are missing")

WATCHDOG_S = 10.0  # the daemon's watchdog interval in this test (WATCHDOG_USEC)
BEAT_S = 2.0  # how often the daemon pings with it: every 2 s or half the interval, if shorter
WATCHED_S = 8.0  # how long the test watches the photo's passes advance before it stops the daemon


def write_large_photo(path: Path) -> Path:
    """A real 24 MP (6000 x 4000) photo: a bundled street photo enlarged, as a camera would shoot it."""
    rgb = cv2.imread(str(PLATES[0]))
    cv2.imwrite(str(path), cv2.resize(rgb, (6000, 4000), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def test_a_long_photo_keeps_the_watchdog_fed_shows_progress_and_sigterm_requeues_it_within_seconds(
    tmp_path: Path,
) -> None:
    from anonymizer.config import BUILTIN_PROFILES_DIR

    config = dh.write_daemon_config(
        tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "photos", BUILTIN_PROFILES_DIR / "default.yaml")]
    )
    inp, out = tmp_path / "photos" / "in", tmp_path / "photos" / "out"
    staging = tmp_path / "staging"
    staging.mkdir()
    photo = write_large_photo(staging / "street-24mp.jpg")

    with dh.DaemonProcess(config, tmp_path) as daemon:
        daemon.start(watchdog_usec=int(WATCHDOG_S * 1e6))
        photo.rename(inp / "street-24mp.jpg")
        dh.wait_for(lambda: "job.started" in daemon.event_names(), 60, "the photo job to start")
        started = time.monotonic()
        # Progress shows in status while the photo runs: the stage, passes done of total. (Decoding
        # and preparing the scaled crops of a 24 MP photo takes 20 s on a busy 2-core machine.)
        running = dh.wait_for(
            lambda: [r for r in status(config)["running"] if r.get("stage")], 120, "the photo's progress in status"
        )[0]
        assert running["stage"].startswith("detect ") and 0 < running["done"] <= running["total"]
        live = status(config)["daemon"]
        assert live["state"] == "running" and live["pid"] == daemon.proc.pid
        time.sleep(WATCHED_S)
        assert not dh.files_under(out), "the photo finished before the test could watch it (make it larger)"

        pings = [t for t in daemon.times_of("WATCHDOG=1") if t >= started - BEAT_S]
        pings.append(time.monotonic())  # the gap since the last ping counts too
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert len(gaps) >= WATCHED_S / BEAT_S and max(gaps) < WATCHDOG_S, f"watchdog gaps {gaps}"
        assert sum(gaps) / len(gaps) < 1.5 * BEAT_S, f"watchdog gaps {gaps}"  # steady, not just in time
        later = next(r for r in status(config)["running"] if r.get("stage"))
        assert (later["stage"], later["done"]) != (running["stage"], running["done"]), "no progress in 8 s"
        # An estimate of the stage's time left shows once the stage has advanced twice. It is
        # blank for a moment where a stage's passes are all done and the cascade is still planning
        # its expensive passes (a 24 of 24 that becomes 24 of 206): wait past such a moment.
        timed = dh.wait_for(
            lambda: [r for r in status(config)["running"] if (r.get("stage_eta_s") or 0) > 0], 30, "a stage's time left"
        )[0]
        assert timed["done"] < timed["total"] and not dh.files_under(out)

        stop_sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.proc.wait(60)
        stop_s = time.monotonic() - stop_sent
        print(
            f"SIGTERM to exit during a 24 MP photo: {stop_s:.2f} s; {len(gaps)} watchdog gaps,"
            f" mean {sum(gaps) / len(gaps):.2f} s, max {max(gaps):.2f} s"
        )
        assert code == 0 and stop_s < 10.0, f"stop took {stop_s:.1f} s"
        time.sleep(0.3)
        assert daemon.saw("STOPPING=1") and "job.requeued" in daemon.event_names()

    # Requeued without counting an attempt; nothing published, nothing temporary left behind.
    assert dh.files_under(out) == []
    after = status(config)
    assert after["daemon"]["state"] == "stopped"
    assert after["states"]["queued"] == 1 and after["running"] == []
    text = dh.run_cli("status", "--config", str(config)).stdout
    assert text.startswith("daemon: stopped")
    from anonymizer.store import Journal

    journal = Journal(tmp_path / "state" / "journal.sqlite3", readonly=True)
    try:
        (job,) = list(journal.jobs())
    finally:
        journal.close()
    assert job.state == "queued" and job.attempts == 0
