"""A sidecar's values are where people are in the picture: when one is invalid or does not fit its
photo, the daemon quarantines the job saying which keys, and no log line, journal entry, audit
record or quarantine reason repeats a coordinate."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import daemon_helpers as dh
import pytest

from anonymizer.store import JOURNAL_FILE

pytestmark = pytest.mark.skipif(len(dh.FACE_SAMPLES) < 2, reason="samples/faces-*.jpg are missing")
TIMEOUT_S = 90
# Distinctive numbers: any of them in a log or record is a leaked coordinate (as a number of its
# own, not inside a hex digest, which holds every digit run by chance).
COORDINATES = ("1234", "4321", "5678", "8765")


def quotes(text: str, number: str) -> bool:
    return re.search(rf"(?<![0-9a-f]){number}(?![0-9a-f])", text) is not None


def test_an_invalid_or_misfit_sidecar_quarantines_its_job_without_repeating_a_coordinate(tmp_path: Path) -> None:
    profile = dh.write_fast_profile(tmp_path / "fast.yaml")
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "vms", profile)])
    inp, quarantine = tmp_path / "vms" / "in", tmp_path / "vms" / "quarantine"
    invalid, misfit = inp / "a.jpg", inp / "b.jpg"
    shutil.copyfile(dh.FACE_SAMPLES[0], invalid)
    shutil.copyfile(dh.FACE_SAMPLES[1], misfit)
    (inp / "a.jpg.masks.yaml").write_text("regions:\n  - box: [1234, 4321, 12, 34]\n")  # x2 < x1
    (inp / "b.jpg.masks.yaml").write_text("regions:\n  - box: [5678, 8765, 5679, 8766]\n")  # off the photo

    with dh.DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        dh.wait_for(lambda: daemon.event_names().count("job.quarantined") >= 2, TIMEOUT_S, "both jobs quarantined")
        daemon.stop()
        logs = daemon.logs()

    reasons = [e.get("reason", "") for e in daemon.events() if e.get("event") == "job.quarantined"]
    assert sorted(reasons) == [
        "ManualMasksError: manual masks do not fit the media at regions[0]",
        "ManualMasksError: sidecar masks are invalid at regions[0].box",
    ]
    records = [str(line) for line in dh.audit_lines(tmp_path / "audit")]
    with sqlite3.connect(tmp_path / "state" / JOURNAL_FILE) as db:
        journal = [str(row) for row in db.execute("SELECT * FROM jobs")]
    written = "\n".join(p.read_text(errors="replace") for p in quarantine.rglob("*") if p.is_file() and p.suffix != ".jpg")
    for where, text in (("logs", logs), ("audit", "\n".join(records)), ("journal", "\n".join(journal)), ("quarantine", written)):
        for number in COORDINATES:
            assert not quotes(text, number), f"{where} repeats the coordinate {number}"
    assert len(list(quarantine.rglob("*.jpg"))) == 2  # both sources kept, in quarantine
