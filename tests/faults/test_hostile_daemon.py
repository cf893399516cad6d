"""Hostile and broken inputs dropped into a folder the real daemon watches.

Every broken file must end in quarantine with a reason (never deleted) while the daemon keeps
serving; links and FIFOs are never followed nor touched; valid files with hostile names are
processed into the output folder and nowhere else; a file replaced while it is being hashed is
never anonymized under the wrong hash; and no log line names any of these files.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import daemon_helpers as dh
import helpers as h
import hostile

TIMEOUT_S = 120
# Never offered by the scanner: not regular files. They must stay exactly as they were.
NOT_OFFERED = {"fifo_stream", "symlink_outside", "symlink_to_device"}


def test_every_hostile_input_is_quarantined_with_a_reason_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    with h.rig_at(tmp_path, retention={"source": "delete"}, settle_s=0.3) as rig:
        built: dict[str, Path] = {}
        for key, case in hostile.REJECTED.items():
            (rig.inp / key).mkdir()
            made = case.build(rig.inp / key, outside)
            # A distinctive prefix, so that the privacy scan cannot confuse a name with a word.
            built[key] = made.rename(made.with_name(f"Qv7-{made.name}"))
        dropped = {p.relative_to(rig.inp).as_posix(): h.sha256(p) for k, p in built.items() if k not in NOT_OFFERED}
        outside_before = {p: h.sha256(p) for p in outside.iterdir()}
        daemon = rig.daemon()  # all of them waiting at start-up, as after a burst on the share
        h.wait_serving(daemon, lambda: h.all_final(rig, len(dropped)), TIMEOUT_S, "every hostile input to be handled")

        # Still serving: a valid photo dropped afterwards is anonymized.
        (rig.inp / "Zoe-next-day.jpg").write_bytes(dh.FACE_SAMPLES[0].read_bytes())
        dropped["Zoe-next-day.jpg"] = h.sha256(rig.inp / "Zoe-next-day.jpg")
        h.wait_serving(
            daemon, lambda: (rig.out / "Zoe-next-day.jpg").exists(), TIMEOUT_S, "a valid photo after the attack"
        )
        h.wait_serving(daemon, lambda: h.all_final(rig, len(dropped)), TIMEOUT_S, "the last job to finish")
        assert daemon.stop() == 0

        h.check_nothing_lost(rig, dropped, expect_quarantined=set(dropped) - {"Zoe-next-day.jpg"})
        reasons = {p.parent.name: json.loads(p.read_text())["reason"] for p in rig.quarantine.rglob("*.reason.json")}
        for key in set(hostile.REJECTED) - NOT_OFFERED:
            assert key in reasons, f"{key}: not quarantined"
            words = hostile.REJECTED[key].reason_words
            if words and key not in {"truncated_mp4_moov_at_end", "truncated_avi", "truncated_mkv"}:
                assert any(w in reasons[key].lower() for w in words), f"{key}: reason {reasons[key]!r}"
        # Links and FIFOs: never followed, never moved, never written through.
        for key in NOT_OFFERED:
            assert built[key].is_symlink() or built[key].exists(), f"{key} was moved or deleted"
        assert {p: h.sha256(p) for p in outside.iterdir()} == outside_before
        assert not [j for j in rig.jobs() if j["rel_path"].split("/")[0] in NOT_OFFERED]
        names = h.private_names(list(built.values()))
        assert h.scan_for_private_data(rig.logs(), names=names) == []


def test_valid_files_with_hostile_names_are_processed_inside_the_output_folder_only(tmp_path: Path) -> None:
    with h.rig_at(tmp_path, settle_s=0.3) as rig:
        daemon = rig.daemon()
        dropped: dict[str, str] = {}
        ignored: dict[Path, str] = {}
        for key in hostile.HOSTILE_NAMES:
            path = hostile.hostile_named(rig.inp, key)
            if path.name.startswith("."):
                # Dotfiles are how writers hide incomplete files: the daemon leaves them alone.
                ignored[path] = h.sha256(path)
            else:
                dropped[path.relative_to(rig.inp).as_posix()] = h.sha256(path)
        h.wait_serving(daemon, lambda: h.all_final(rig, len(dropped)), TIMEOUT_S, "every oddly named file")
        assert daemon.stop() == 0

        # Processed, or quarantined with a reason: both keep the evidence; neither may escape.
        quarantined = {rel for rel in dropped if (rig.quarantine / rel).exists()}
        h.check_nothing_lost(rig, dropped, expect_quarantined=quarantined)
        outputs = [p for p in rig.out.rglob("*") if p.is_file()]
        assert len(outputs) == len(dropped) - len(quarantined) and all(p.parent == rig.out for p in outputs)
        assert {p: h.sha256(p) for p in ignored} == ignored, "a dotfile was touched"
        assert sorted(os.listdir(tmp_path / "cam")) == ["in", "out", "quarantine"]
        names = {os.fsdecode(n) for n in hostile.HOSTILE_NAMES.values()}
        names |= {n.rsplit(".", 1)[0] for n in names if len(n.rsplit(".", 1)[0]) > 3}
        assert h.scan_for_private_data(rig.logs(), names=names) == []


def test_a_file_replaced_while_it_is_hashed_is_never_anonymized_under_the_wrong_hash(tmp_path: Path) -> None:
    with h.rig_at(tmp_path, settle_s=0.3) as rig:
        daemon = rig.daemon()
        # Version A: a valid photo padded with 2 GiB of (sparse) trailing zeros, so that hashing
        # takes a second or more and the test can replace the file in the middle of it.
        version_a = rig.root / "a.jpg"
        version_a.write_bytes(dh.FACE_SAMPLES[0].read_bytes())
        os.truncate(version_a, 2 * 1024**3)
        os.rename(version_a, rig.inp / "evidence.jpg")

        def hashing() -> bool:
            job = h.job_for(rig, "evidence.jpg")
            return bool(job and job["state"] == "running" and not job["input_sha256"])

        h.wait_for(hashing, TIMEOUT_S, "the daemon to start hashing", interval_s=0.005)
        # Version B replaces A atomically (new inode), as a VMS re-export does.
        version_b = rig.root / "b.jpg"
        version_b.write_bytes(dh.FACE_SAMPLES[1].read_bytes())
        os.replace(version_b, rig.inp / "evidence.jpg")
        sha_b = h.sha256(rig.inp / "evidence.jpg")
        h.wait_serving(daemon, lambda: h.all_final(rig, 2), TIMEOUT_S, "both versions to be handled")
        assert daemon.stop() == 0

        jobs = rig.jobs()
        first, second = jobs[0], jobs[-1]
        assert first["state"] == "vanished" and first["output_rel"] is None, h._brief(jobs)
        assert second["input_sha256"] == sha_b and second["outcome"] == "anonymized"
        h.check_nothing_lost(rig, {"evidence.jpg": sha_b})


def test_a_file_growing_forever_is_never_offered_while_it_grows(tmp_path: Path) -> None:
    # An "endless stream" written into the share (a recorder that never closes its file) must not
    # be picked up half-written: it never settles, so it is never hashed, read or moved.
    with h.rig_at(tmp_path, settle_s=0.5) as rig:
        daemon = rig.daemon()
        data = hostile.make_gradient_video(rig.root / "clip.ts", container="mpegts", frames=30).read_bytes()
        steps = 16
        with open(rig.inp / "live.ts", "wb") as fh:
            for i in range(steps):  # ~3 s of growth, a write every 0.2 s: faster than settle_s
                fh.write(data[i * len(data) // steps : (i + 1) * len(data) // steps])
                fh.flush()
                time.sleep(0.2)
                assert h.job_for(rig, "live.ts") is None, "offered while still growing"
        h.wait_serving(daemon, lambda: (rig.out / "live.ts").exists(), TIMEOUT_S, "the finished recording")
        assert daemon.stop() == 0
        h.check_nothing_lost(rig, {"live.ts": h.sha256(rig.inp / "live.ts")})
