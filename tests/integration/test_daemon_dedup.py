"""Every input file ends with an output at its own path, however often its bytes were seen before.

Issue 16: content dedup marked a re-dropped file (its output deleted by the user) or the same
bytes under a new name as a "duplicate" pointing at an output that was gone or had another name,
so the user never found their file, and retention failed every 30 s forever. The real daemon runs
here on real files; a consumer that takes outputs away before retention is real too.
"""

from __future__ import annotations

import shutil
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import daemon_helpers as dh
from daemon_helpers import status
from support import free_port, metric

pytestmark = pytest.mark.skipif(len(dh.FACE_SAMPLES) < 2, reason="samples/faces-*.jpg are missing")

TIMEOUT_S = 60


def drop(src: Path, dst: Path) -> None:
    """Copy in under a temporary name and rename, as a well-behaved share writer does (new inode)."""
    tmp = dst.with_name(dst.name + ".part")
    shutil.copyfile(src, tmp)
    tmp.rename(dst)


def job_lines(audit_dir: Path) -> list[dict]:
    return [line for line in dh.audit_lines(audit_dir) if line["event"] == "job"]


def test_redropped_and_renamed_copies_each_get_an_output_at_their_own_path(tmp_path: Path) -> None:
    # 'later': sources deleted after an hour, so the first job is still open (its output name
    # known) when the copies arrive. 'kept': keep at once, so the journal has already forgotten
    # the first job's names (issue 16's privacy rule) and only the hash of its output remains.
    later = dh.write_fast_profile(tmp_path / "later.yaml", retention={"source": "delete", "after": "1h"})
    kept = dh.write_fast_profile(tmp_path / "kept.yaml", retention={"source": "keep"})
    config = dh.write_daemon_config(
        tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "later", later), dh.folder_entry(tmp_path, "kept", kept)]
    )
    a, b = dh.FACE_SAMPLES[0], dh.FACE_SAMPLES[1]
    l_in, l_out = tmp_path / "later" / "in", tmp_path / "later" / "out"
    k_in, k_out = tmp_path / "kept" / "in", tmp_path / "kept" / "out"

    with dh.DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        drop(a, l_in / "anna.jpg")
        drop(b, k_in / "ben.jpg")
        dh.wait_for(lambda: (l_out / "anna.jpg").exists() and (k_out / "ben.jpg").exists(), TIMEOUT_S, "first outputs")
        ben_out = (k_out / "ben.jpg").read_bytes()

        # 1. The user deletes the output and drops the same file again: the earlier output is
        #    gone, so the file is anonymized again, under its own name.
        (l_out / "anna.jpg").unlink()
        (l_in / "anna.jpg").unlink()
        drop(a, l_in / "anna.jpg")
        dh.wait_for(lambda: (l_out / "anna.jpg").exists(), TIMEOUT_S, "output of the re-dropped file")

        # 2. The same bytes under a new name: a verified copy of the earlier output, no rerun.
        (l_in / "sub").mkdir()
        drop(a, l_in / "sub" / "anna-copy.jpg")
        dh.wait_for(lambda: (l_out / "sub" / "anna-copy.jpg").exists(), TIMEOUT_S, "output under the new name")
        assert (l_out / "sub" / "anna-copy.jpg").read_bytes() == (l_out / "anna.jpg").read_bytes()

        # 3. Dropped again while its output is still there, after the journal forgot the first
        #    job's names: recognised by the output's recorded hash at its own path, not rerun,
        #    and no second copy ("ben-1.jpg").
        drop(b, k_in / "ben.jpg")
        dh.wait_for(lambda: len(job_lines(tmp_path / "audit")) == 5, TIMEOUT_S, "five job lines")
        # 4. Same bytes, new name, first job's names forgotten: an output under that name too.
        drop(b, k_in / "ben-again.jpg")
        dh.wait_for(lambda: (k_out / "ben-again.jpg").exists(), TIMEOUT_S, "output of the renamed copy")
        dh.wait_for(lambda: len(job_lines(tmp_path / "audit")) == 6, TIMEOUT_S, "six job lines")
        assert daemon.stop() == 0

    assert sorted(p.relative_to(tmp_path).as_posix() for p in dh.files_under(tmp_path / "later" / "out")) == [
        "later/out/anna.jpg",
        "later/out/sub/anna-copy.jpg",
    ]
    assert sorted(p.name for p in dh.files_under(k_out)) == ["ben-again.jpg", "ben.jpg"]
    assert (k_out / "ben.jpg").read_bytes() == ben_out

    lines = job_lines(tmp_path / "audit")
    by_input = {}
    for line in lines:
        by_input.setdefault(line["input"]["sha256"], []).append(line)
    first_a, rerun_a, copy_a = by_input[dh.sha256(a)]
    assert (first_a["outcome"], rerun_a["outcome"], copy_a["outcome"]) == ("anonymized", "anonymized", "duplicate")
    assert rerun_a["output"]["sha256"] == dh.sha256(l_out / "anna.jpg")
    assert copy_a["duplicate_of"] == rerun_a["job_id"] and copy_a["output"] == rerun_a["output"]
    assert copy_a["output"]["sha256"] == dh.sha256(l_out / "sub" / "anna-copy.jpg")
    first_b, again_b, renamed_b = by_input[dh.sha256(b)]
    # The renamed copy: the journal finds the first output by its name's HMAC and copies it
    # (verified against its recorded SHA-256), or anonymizes again when it cannot; either way
    # it ends with an output under its own name.
    assert (first_b["outcome"], again_b["outcome"]) == ("anonymized", "duplicate")
    assert renamed_b["outcome"] in ("anonymized", "duplicate")
    assert again_b["duplicate_of"] == first_b["job_id"] and again_b["output"] == first_b["output"]
    assert renamed_b["output"]["sha256"] == dh.sha256(k_out / "ben-again.jpg")

    # Nothing is stuck: the 'later' sources wait for their hour, no retention problem, no loop.
    after = status(config)
    assert after["retention_problems"] == []
    assert after["sources"] == {"awaiting": 3, "kept": 3}
    logs = dh.all_daemon_logs(tmp_path)
    assert "retention.failed" not in logs and "job.output_reused" in logs
    for name in ("anna", "ben"):
        assert name not in logs
    assert dh.run_cli("audit", "verify", "--config", str(config)).returncode == 0


def test_a_source_whose_output_was_taken_away_is_retried_then_held_and_shown(tmp_path: Path) -> None:
    port = free_port()
    profile = dh.write_fast_profile(tmp_path / "fast.yaml", retention={"source": "delete", "after": "3s"})
    config = dh.write_daemon_config(
        tmp_path / "daemon.yaml",
        [dh.folder_entry(tmp_path, "vms", profile)],
        metrics=f"127.0.0.1:{port}",
        retry={"max_attempts": 3, "base_s": 0.5, "max_s": 1.0},
    )
    inp, out, quarantine = (tmp_path / "vms" / d for d in ("in", "out", "quarantine"))
    taken = tmp_path / "consumer"
    taken.mkdir()

    with dh.DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        drop(dh.FACE_SAMPLES[0], inp / "cam.jpg")
        (inp / "notes.jpg").write_text("not a photo\n")
        # A downstream consumer moves the output away before the source's retention is due.
        dh.wait_for(lambda: (out / "cam.jpg").exists(), TIMEOUT_S, "the output", interval_s=0.02)
        (out / "cam.jpg").rename(taken / "cam.jpg")
        dh.wait_for(lambda: "retention.held" in daemon.event_names(), TIMEOUT_S, "retention to give up")
        dh.wait_for(lambda: (quarantine / "notes.jpg.reason.json").exists(), TIMEOUT_S, "the quarantine")

        def scrape() -> str:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            return text if 'anonymizer_sources_held{folder="vms"} 1.0' in text else ""

        metrics = dh.wait_for(scrape, 30, "the held source in /metrics")
        now = status(config)
        text = dh.run_cli("status", "--config", str(config)).stdout
        assert daemon.stop() == 0

    # The source is never deleted without its output: it stays, and says why.
    assert dh.sha256(inp / "cam.jpg") == dh.sha256(dh.FACE_SAMPLES[0])
    failed = [e for e in daemon.events() if e["event"] == "retention.failed"]
    assert [e["attempt"] for e in failed] == [1, 2]
    assert metric(metrics, "anonymizer_retention_failures_total", folder="vms") == 3
    (problem,) = now["retention_problems"]
    assert problem["state"] == "held" and problem["attempts"] == 3
    assert "recorded output is not in the output folder" in problem["reason"]
    assert now["sources"].get("held") == 1
    assert "retention problems" in text and "held after 3 failed tries" in text
    assert "retired" not in text  # the journal's word; status says what happened to each source
    # A file quarantined at its first attempt says so (it used to say 'attempts 0').
    (quarantined,) = [f for f in now["recent_failures"] if f["state"] == "quarantined"]
    assert quarantined["attempts"] == 1
    # Held is final: a restart does not bring the retries back, nor queue the source again.
    with dh.DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        time.sleep(3.0)  # several scans and main-loop turns
        assert daemon.stop() == 0
        assert "retention.failed" not in daemon.event_names() and "job.started" not in daemon.event_names()
    assert (inp / "cam.jpg").exists()
