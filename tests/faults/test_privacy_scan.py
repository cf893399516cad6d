"""Privacy: nothing the daemon writes for operators (logs, metrics, status, audit) leaks personal data.

One scenario with what makes a daemon talk: photos with real readable plates and faces under
names that contain a person's name and the plate number, a hostile playlist, a broken video and
a metrics scrape. Then every log line, the /metrics page, ``status --json`` and the audit log are
scanned for the file names, the plate texts and anything shaped like coordinates. Crashes,
restarts, retries and storage faults are covered too: every other fault test scans its own logs
and audit for the names of its inputs (``helpers.check_nothing_lost``).
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import daemon_helpers as dh
import helpers as h
import hostile
import pytest

TIMEOUT_S = 180
# The readable plates on the two shipped sample photos (their labels in ../shared/eval).
PLATE_TEXTS = {"0SG719", "K179658"}
PLATE_SAMPLES = sorted(dh.SAMPLES.glob("plate-*.jpg"))

pytestmark = pytest.mark.skipif(len(PLATE_SAMPLES) < 2 or not dh.FACE_SAMPLES, reason="sample photos are missing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_log_line_metric_status_or_audit_line_names_a_file_a_plate_or_coordinates(tmp_path: Path) -> None:
    address = f"127.0.0.1:{_free_port()}"
    with h.rig_at(tmp_path, plates=True, retention={"source": "delete"}, metrics=address, settle_s=0.3) as rig:
        inputs = {
            "Jane-Roe_car_0SG719.jpg": PLATE_SAMPLES[0],
            "visitors/Max-Mustermann_K179658.jpg": PLATE_SAMPLES[1],
            "Erika-Musterfrau-crowd.jpg": dh.FACE_SAMPLES[0],
        }
        for rel, src in inputs.items():
            (rig.inp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, rig.inp / rel)
        playlist = hostile.hls_playlist(rig.inp, rig.root)
        playlist = playlist.rename(rig.inp / "Secret-Informant.m3u8")
        broken = hostile.truncated_avi(rig.root)
        broken = broken.rename(rig.inp / "Witness-Statement-Clip.avi")
        names = h.private_names([rig.inp / r for r in inputs] + [playlist, broken])
        names |= {"Jane-Roe", "Max-Mustermann", "Erika-Musterfrau", "Secret-Informant", "Witness"}

        daemon = rig.daemon()
        h.wait_serving(daemon, lambda: h.all_final(rig, 5), TIMEOUT_S, "every input to be handled")
        metrics = h.scrape_metrics(address)
        status = dh.run_cli("status", "--config", str(rig.config), "--json")
        assert status.returncode == 0, status.stderr
        assert daemon.stop() == 0
        audit = (rig.audit / "audit.jsonl").read_text()
        plates_found = sum(a.get("counts", {}).get("plate", {}).get("detections", 0) for a in dh.audit_lines(rig.audit))

        assert plates_found >= 1, "the plate detector found no plate: the scan would prove little"
        for where, text in {
            "logs": rig.logs(),
            "metrics": metrics,
            "status": status.stdout + status.stderr,
            "audit": audit,
        }.items():
            problems = h.scan_for_private_data(text, names=names, plate_texts=PLATE_TEXTS)
            assert problems == [], f"{where}: {problems}"
        assert "anonymizer_jobs_total" in metrics


def test_the_scanner_catches_what_it_is_meant_to_catch() -> None:
    # The scan itself must not be a no-op: each kind of leak is found.
    line = '{"event": "job.done", "path": "cam/Jane-Roe.jpg", "box": [12, 30, 50.5, 80], "plate": "0SG719"}'
    problems = h.scan_for_private_data(line, names={"Jane-Roe"}, plate_texts={"0SG719"})
    assert len(problems) == 4, problems
    clean = '{"event": "job.done", "counts": {"face": {"regions": 3}}, "frames": 90, "seconds": 2.1}'
    assert h.scan_for_private_data(clean, names={"Jane-Roe"}, plate_texts={"0SG719"}) == []
