"""Transient failures are retried with backoff, then quarantined; outputs never overwrite; metrics.

The transient failure is real: a plain file sits where the output sub-folder must be created, so
publishing fails with an OSError until the test removes it (root ignores permission bits, so
chmod cannot be used to provoke it).
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import daemon_helpers as dh
from support import free_port, metric

pytestmark = pytest.mark.skipif(len(dh.FACE_SAMPLES) < 3, reason="samples/faces-*.jpg are missing")


def test_io_failures_are_retried_then_quarantined_existing_outputs_are_never_overwritten_and_metrics_count(
    tmp_path: Path,
) -> None:
    port = free_port()
    profile = dh.write_fast_profile(tmp_path / "fast.yaml", retention={"source": "delete"})
    config = dh.write_daemon_config(
        tmp_path / "daemon.yaml",
        [dh.folder_entry(tmp_path, "vms", profile)],
        metrics=f"127.0.0.1:{port}",
        retry={"max_attempts": 3, "base_s": 1.0, "max_s": 2.0},
    )
    inp, out, quarantine = (tmp_path / "vms" / d for d in ("in", "out", "quarantine"))
    (out / "existing.jpg").write_bytes(b"someone else's file")
    (out / "cam1").write_bytes(b"a file where a folder should be")
    (out / "cam2").write_bytes(b"a file where a folder should be")
    (inp / "cam1").mkdir()
    (inp / "cam2").mkdir()

    with dh.DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        shutil.copyfile(dh.FACE_SAMPLES[0], inp / "existing.jpg")
        shutil.copyfile(dh.FACE_SAMPLES[1], inp / "cam1" / "x.jpg")
        dh.wait_for(lambda: "job.retry" in daemon.event_names(), 60, "a retry of the blocked job")
        (out / "cam1").unlink()  # the share recovers
        dh.wait_for(lambda: (out / "cam1" / "x.jpg").exists(), 60, "output after the retry")

        shutil.copyfile(dh.FACE_SAMPLES[2], inp / "cam2" / "y.jpg")  # cam2 never recovers
        dh.wait_for(lambda: (quarantine / "cam2" / "y.jpg.reason.json").exists(), 60, "quarantine after retries")
        dh.wait_for(lambda: (out / "existing-1.jpg").exists(), 60, "the colliding output under a unique name")

        def scrape() -> str:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            # The reason file is written just before the counters move: wait for them.
            return text if 'outcome="quarantined"' in text else ""

        metrics = dh.wait_for(scrape, 30, "the quarantine counted in /metrics")
        assert daemon.stop() == 0

    assert (out / "existing.jpg").read_bytes() == b"someone else's file"
    assert dh.sha256(quarantine / "cam2" / "y.jpg") == dh.sha256(dh.FACE_SAMPLES[2])
    reason = json.loads((quarantine / "cam2" / "y.jpg.reason.json").read_text())
    assert reason["error_type"] == "RetriesExhausted" and "gave up after 3 attempts" in reason["reason"]
    retries = [e for e in daemon.events() if e["event"] == "job.retry"]
    assert len(retries) >= 3 and all(e["retry_in_s"] <= 3.0 for e in retries)  # max_s 2 x 1.5 jitter

    assert metric(metrics, "anonymizer_jobs_total", folder="vms", outcome="anonymized") == 2
    assert metric(metrics, "anonymizer_jobs_total", folder="vms", outcome="quarantined") == 1
    assert metric(metrics, "anonymizer_failures_total", folder="vms", kind="io") >= 3
    assert metric(metrics, "anonymizer_frames_total", folder="vms") == 2
    assert metric(metrics, "anonymizer_last_success_timestamp_seconds") > 0
    assert metric(metrics, "anonymizer_queue_depth", folder="vms") == 0
    assert "anonymizer_job_duration_seconds_bucket" in metrics
