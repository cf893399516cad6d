"""The heartbeat: pings the watchdog only while the worker ticks; its file tells status the truth.

A real unix datagram socket stands in for systemd's notify socket, the real ``Notifier`` and
``Heartbeat`` send to it, and ``daemon_liveness`` (what ``anonymizer status`` shows) reads the
real status file.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anonymizer.daemon.heartbeat import STATUS_FILE, Heartbeat
from anonymizer.daemon.notify import Notifier
from anonymizer.daemon.status import daemon_liveness


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.05)
    yield path, sock
    sock.close()


def received(sock: socket.socket, seconds: float) -> list[tuple[float, str]]:
    """Every datagram that arrives within ``seconds``, with its arrival time."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except TimeoutError:
            pass
    return out


def test_pings_continue_while_the_worker_ticks_and_stop_when_it_hangs(notify_socket, tmp_path: Path) -> None:
    path, sock = notify_socket
    # A 2 s watchdog, pinged every 0.1 s; the worker counts as hung after 1 s without a tick.
    # (Margins are wide: this runs on a shared 2-core machine.)
    notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
    beat = Heartbeat(notifier, tmp_path / STATUS_FILE, stall_s=1.0, interval_s=0.1)
    beat.start()
    try:
        # A job that keeps making progress, however long it runs: pings keep coming.
        ticking = time.monotonic()
        pings = []
        while time.monotonic() - ticking < 3.0:
            beat.tick()
            pings += [t for t, m in received(sock, 0.1) if m == "WATCHDOG=1"]
        assert len(pings) >= 10
        assert max(b - a for a, b in itertools.pairwise(pings)) < 2.0  # within the watchdog interval
        # A worker stuck in one call: no tick. Pings stop once the last tick is stall_s old, so
        # systemd's watchdog fires and restarts the daemon.
        last_tick = time.monotonic()
        late = [t for t, m in received(sock, 3.0) if m == "WATCHDOG=1"]
        assert late, "pings stopped at once: the stall allowance was not honoured"
        assert [t for t in late if t - last_tick > 1.0 + 0.5] == []
        # It resumes as soon as the worker moves again.
        beat.tick()
        assert "WATCHDOG=1" in [m for _, m in received(sock, 1.0)]
    finally:
        beat.stop()


def test_the_status_file_carries_the_job_s_progress_and_says_stopped_after_a_stop(tmp_path: Path) -> None:
    beat = Heartbeat(Notifier({}), tmp_path / STATUS_FILE, stall_s=60, interval_s=0.05)
    beat.state = "running"
    beat.start()
    try:
        beat.job_started("j-0123456789ab", "vms")
        first = time.monotonic()
        beat.report("detect", 10, 100)
        time.sleep(0.2)
        beat.report("detect", 20, 100)
        elapsed = time.monotonic() - first
        time.sleep(0.15)
        live = daemon_liveness(tmp_path)
        assert live["state"] == "running" and live["pid"] == os.getpid()
        job = live["job"]
        assert (job["job_id"], job["stage"], job["done"], job["total"]) == ("j-0123456789ab", "detect", 20, 100)
        # 10 items in ``elapsed`` (about 0.2 s): 8 times that for the 80 left.
        assert 8 * elapsed * 0.8 - 0.1 <= job["stage_eta_s"] <= 8 * elapsed + 0.1
        assert (tmp_path / STATUS_FILE).stat().st_mode & 0o777 == 0o600
    finally:
        beat.stop()
    assert daemon_liveness(tmp_path)["state"] == "stopped"


def test_a_daemon_that_died_without_stopping_is_not_reported_running(tmp_path: Path) -> None:
    assert daemon_liveness(tmp_path)["state"] == "never-started"
    # The status file of a killed daemon: its last heartbeat, and a pid that no longer exists.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    now = time.time()
    info = {"state": "running", "pid": int(dead.stdout), "heartbeat_at": now - 3, "beat_s": 2.0, "job": None}
    (tmp_path / STATUS_FILE).write_text(json.dumps(info))
    assert daemon_liveness(tmp_path, now)["state"] == "not-running"
    # A live pid whose heartbeat stopped long ago is not taken for a working daemon either.
    info.update(pid=os.getpid(), heartbeat_at=now - 600)
    (tmp_path / STATUS_FILE).write_text(json.dumps(info))
    assert daemon_liveness(tmp_path, now)["state"] == "not-responding"


def test_a_job_that_stops_advancing_is_reported_once_and_repeated_values_do_not_count_as_progress(
    tmp_path: Path,
) -> None:
    """Liveness a stuck job cannot fake: the lifecycle's progress callback, called many times a
    second by a waiting video pipeline, ticks only when its values change; the heartbeat then
    reports the stall (the service logs it and exits 7, and systemd restarts it)."""
    from anonymizer.daemon.job import Lifecycle

    stalls: list[dict] = []
    beat = Heartbeat(Notifier({}), tmp_path / STATUS_FILE, stall_s=0.5, interval_s=0.05, on_stall=stalls.append)
    beat.state = "running"
    lifecycle = Lifecycle(
        journal=None,  # type: ignore[arg-type]
        audit=None,  # type: ignore[arg-type]
        hmac_key=b"k",
        engine_for=lambda _: None,  # type: ignore[arg-type,return-value]
        retry=None,  # type: ignore[arg-type]
        log=None,
        heartbeat=beat.tick,
        report=beat.report,
    )
    beat.start()
    try:
        beat.job_started("j-0123456789ab", "vms")
        passes = 0
        until = time.monotonic() + 1.0
        while time.monotonic() < until:  # advancing: passes inside a long frame count
            passes += 1
            lifecycle.progress("detect", 3, 40, passes=passes)
            time.sleep(0.02)
        assert stalls == []
        until = time.monotonic() + 1.5
        while time.monotonic() < until:  # stuck: the same values again and again
            lifecycle.progress("detect", 3, 40, passes=passes)
            time.sleep(0.02)
        assert len(stalls) == 1, stalls
        assert stalls[0]["stalled_s"] >= 0.5
        assert (stalls[0]["job"]["job_id"], stalls[0]["job"]["stage"], stalls[0]["job"]["done"]) == (
            "j-0123456789ab",
            "detect",
            3,
        )
        assert json.loads((tmp_path / STATUS_FILE).read_text())["state"] == "stalled"
    finally:
        beat.stop()


def test_the_running_job_s_progress_is_in_the_metrics_for_its_current_stage_only() -> None:
    from prometheus_client import generate_latest

    from anonymizer.daemon.metrics import Metrics

    metrics = Metrics()
    beat = Heartbeat(Notifier({}), None, stall_s=60, metrics=metrics)
    beat.job_started("j-1", "vms")
    beat.report("detect", 0, 40)
    time.sleep(0.05)
    beat.report("detect", 10, 40)
    text = generate_latest(metrics.registry).decode()
    assert 'anonymizer_job_progress_done{folder="vms",stage="detect"} 10.0' in text
    assert 'anonymizer_job_progress_total{folder="vms",stage="detect"} 40.0' in text
    assert 'anonymizer_job_stage_eta_seconds{folder="vms",stage="detect"}' in text
    beat.report("verify", 50, 40)
    text = generate_latest(metrics.registry).decode()
    assert 'stage="detect"' not in text and 'anonymizer_job_progress_done{folder="vms",stage="verify"} 50.0' in text
    beat.tick()
    assert metrics.last_progress._value.get() > time.time() - 5
    beat.job_ended()
    assert "anonymizer_job_progress_done{" not in generate_latest(metrics.registry).decode()
