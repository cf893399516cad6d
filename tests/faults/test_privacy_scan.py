"""Privacy: nothing the daemon writes for operators (logs, metrics, status, audit) leaks personal data.

One scenario with what makes a daemon talk: photos with real readable plates and faces under
names that contain a person's name and the plate number, a hostile playlist, a broken video and
a metrics scrape. Then every log line, the /metrics page, ``status --json`` and the audit log are
scanned for the file names, the plate texts and anything shaped like coordinates. Crashes,
restarts, retries and storage faults are covered too: every other fault test scans its own logs
and audit for the names of its inputs (``helpers.check_nothing_lost``).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from pathlib import Path

import daemon_helpers as dh
import helpers as h
import hostile
import pytest
from support import free_port

TIMEOUT_S = 180
# How long erased names may stay in the live WAL after a retirement (a reader holding it off).
WAL_CLEAN_S = 15
# The readable plates on the two shipped sample photos (their labels in ../shared/eval).
PLATE_TEXTS = {"0SG719", "K179658"}
PLATE_SAMPLES = sorted(dh.SAMPLES.glob("plate-*.jpg"))

pytestmark = pytest.mark.skipif(len(PLATE_SAMPLES) < 2 or not dh.FACE_SAMPLES, reason="sample photos are missing")


def test_no_log_line_metric_status_or_audit_line_names_a_file_a_plate_or_coordinates(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
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


def _raw_journal(state: Path) -> str:
    """The journal's files as bytes on disk (main file, WAL, shared memory), for a text scan."""
    parts = [p.read_bytes() for p in sorted(state.glob(f"{h.JOURNAL_FILE}*"))]
    return b"".join(parts).decode("latin-1")


def test_after_retirement_the_journal_holds_no_file_name_and_state_files_are_private(tmp_path: Path) -> None:
    # Issue 16: names are needed while a job is open; once it is retired the journal keeps only
    # the path HMAC. And the daemon, run outside systemd under a permissive umask, still makes its
    # state and audit files 0600 in 0700 folders.
    with h.rig_at(tmp_path, retention={"source": "delete"}, settle_s=0.3) as rig:
        photo = rig.inp / "visitors" / "Anna_Schmidt_passport.jpg"
        photo.parent.mkdir()
        shutil.copyfile(dh.FACE_SAMPLES[0], photo)
        (rig.inp / "empty.jpg").write_bytes(b"")  # its stem is a word of its own reason
        names = h.private_names([photo, rig.inp / "empty.jpg"]) | {"Anna_Schmidt", "visitors/"}
        names.discard("empty")  # the reason says the file is empty, and rightly so

        old_umask = os.umask(0)
        try:
            daemon = rig.daemon()
        finally:
            os.umask(old_umask)

        def settled() -> bool:
            rows = rig.jobs()
            return len(rows) == 2 and sorted(r["state"] for r in rows) == ["quarantined", "retired"]

        h.wait_serving(daemon, settled, TIMEOUT_S, "the photo retired and the empty file quarantined")
        # While the daemon runs: its WAL is live, and must not hold the erased names either. A
        # reader (this test's own polling) can hold off the checkpoint that cuts the WAL for a
        # moment; the coordinator tries again every turn, so the names are gone within seconds.
        assert (rig.state / f"{h.JOURNAL_FILE}-wal").exists()
        deadline = time.monotonic() + WAL_CLEAN_S
        while (running_scan := h.scan_for_private_data(_raw_journal(rig.state), names=names)) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        status = dh.run_cli("status", "--config", str(rig.config), "--json")
        assert daemon.stop() == 0

        assert running_scan == [], f"journal while running: {running_scan}"
        stopped_scan = h.scan_for_private_data(_raw_journal(rig.state), names=names)
        assert stopped_scan == [], f"journal after stop: {stopped_scan}"
        rows = {r["state"]: r for r in rig.jobs()}
        assert rows["retired"]["rel_path"] == "" and rows["retired"]["output_rel"] is None
        assert rows["retired"]["path_hmac"] == h.rel_hmac(rig, "visitors/Anna_Schmidt_passport.jpg")
        assert not photo.exists() and (rig.out / "visitors" / "Anna_Schmidt_passport.jpg").is_file()

        # Redacting names, not words: the reason of a file called empty.jpg still says why.
        reason = "UnsupportedMediaError: file is empty (0 bytes)"
        assert rows["quarantined"]["error"] == reason
        reason_file = json.loads((rig.quarantine / "empty.jpg.reason.json").read_text())
        assert reason_file["reason"] == reason
        assert [a["reason"] for a in dh.audit_lines(rig.audit) if a.get("outcome") == "quarantined"] == [reason]
        assert reason in status.stdout

        # The chain is keyed; the head exports and verifies.
        lines = dh.audit_lines(rig.audit)
        assert lines and all("key_id" in a for a in lines)
        head = dh.run_cli("audit", "head", "--config", str(rig.config))
        assert head.returncode == 0, head.stderr
        verify = dh.run_cli("audit", "verify", "--config", str(rig.config), "--head", head.stdout)
        assert verify.returncode == 0 and "predate" not in verify.stdout, verify.stdout

        modes = {
            p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for folder in (rig.state, rig.audit)
            for p in [folder, *folder.iterdir()]
        }
        expected = {name: (0o700 if (tmp_path / name).is_dir() else 0o600) for name in modes}
        assert modes == expected
        assert {"state/journal.sqlite3", "state/audit-hmac.key", "state/audit-chain.key", "audit/audit.jsonl"} <= set(
            modes
        )
