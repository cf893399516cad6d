"""The review hold through the real daemon and the real CLI: nothing reaches the output share
until approved, sources stay, approval publishes exactly once (repeated, and across a restart),
a rejection with masks runs the job again with them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import daemon_helpers as dh
import pytest
import yaml

pytestmark = pytest.mark.skipif(len(dh.FACE_SAMPLES) < 2, reason="samples/faces-*.jpg are missing")
TIMEOUT_S = 90


def review(config: Path, *args: str) -> tuple[int, object]:
    run = dh.run_cli("review", *args[:1], "--config", str(config), "--json", *args[1:])
    assert run.returncode in (0, 1), run.stderr
    return run.returncode, json.loads(run.stdout) if run.stdout.strip() else None


def waiting(config: Path) -> list[dict]:
    return review(config, "list")[1]  # type: ignore[return-value]


def test_review_hold_publishes_only_on_approval_once_and_reruns_a_rejection_with_masks(tmp_path: Path) -> None:
    profile = dh.write_fast_profile(tmp_path / "fast.yaml", retention={"source": "delete"})
    data = yaml.safe_load(profile.read_text())
    profile.write_text(yaml.safe_dump({**data, "review": "required"}))
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "vms", profile)])
    inp, out = tmp_path / "vms" / "in", tmp_path / "vms" / "out"
    state = tmp_path / "state"
    alice, bob = inp / "alice-at-desk.jpg", inp / "bob-at-gate.jpg"
    shutil.copyfile(dh.FACE_SAMPLES[0], alice)
    shutil.copyfile(dh.FACE_SAMPLES[1], bob)
    (inp / "bob-at-gate.jpg.masks.yaml").write_text("regions:\n  - box: [0, 0, 40, 30]\n")
    extra = tmp_path / "more.masks.yaml"
    extra.write_text("regions:\n  - polygon: [[50, 50], [90, 50], [70, 90]]\n    method: pixelate\n")

    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        held = dh.wait_for(lambda: len(waiting(config)) == 2 and waiting(config), TIMEOUT_S, "two outputs held")
        # Held: nothing in the output share, both sources in place, each copy beside its report.
        assert dh.files_under(out) == [] and alice.exists() and bob.exists()
        by_kind = {h["manual"]["regions"] if "manual" in h else 0: h for h in held}
        a_job, b_job = by_kind[0]["job_id"], by_kind[1]["job_id"]
        for h in held:
            assert Path(h["review_copy"]).is_file() and Path(h["qa_report"]).is_file()
            assert Path(h["review_copy"]).is_relative_to(state / "review")
        status = json.loads(dh.run_cli("status", "--config", str(config), "--json").stdout)
        assert status["review"]["waiting"] == 2 and status["review"]["oldest_waiting_s"] >= 0

        # Approve: published once, then retention deletes the source; repeating changes nothing.
        code, result = review(config, "approve", a_job, "--operator", "dpo-1", "--wait", "30")
        assert code == 0 and result["state"] == "published", result
        assert dh.files_under(out) == [out / "alice-at-desk.jpg"]
        dh.wait_for(lambda: not alice.exists(), TIMEOUT_S, "retention after approval")
        code, again = review(config, "approve", a_job, "--operator", "dpo-1")
        assert code == 0 and again["recorded"] is False
        assert dh.files_under(out) == [out / "alice-at-desk.jpg"]

        # Reject with masks: the job runs again with the sidecar's region and the reviewer's.
        code, result = review(config, "reject", b_job, "--masks", str(extra), "--wait", "30")
        assert code == 0 and result["state"] in ("rerun", "waiting"), result  # "waiting": already held again
        rerun = dh.wait_for(
            lambda: [h for h in waiting(config) if h["job_id"] == b_job and h["rounds"] == 2], TIMEOUT_S, "held again"
        )[0]
        assert rerun["manual"]["regions"] == 2 and dh.files_under(out) == [out / "alice-at-desk.jpg"]
        assert bob.exists()
        assert daemon.stop() == 0

    # Approved while the daemon is down: applied when it starts, exactly once.
    code, result = review(config, "approve", b_job)
    assert code == 0 and result["recorded"] is True
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        dh.wait_for(lambda: (out / "bob-at-gate.jpg").exists(), TIMEOUT_S, "publication after restart")
        dh.wait_for(lambda: not bob.exists(), TIMEOUT_S, "retention of the second source")
        assert daemon.stop() == 0
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        code, again = review(config, "approve", b_job)
        assert code == 0 and again["recorded"] is False and again["state"] == "published"
        assert daemon.stop() == 0
    assert dh.files_under(out) == [out / "alice-at-desk.jpg", out / "bob-at-gate.jpg"]
    assert waiting(config) == []

    lines = dh.audit_lines(tmp_path / "audit")
    actions = [(r["job_id"], r["action"]) for r in lines if r["event"] == "review"]
    assert set(actions[:2]) == {(a_job, "held"), (b_job, "held")}
    assert actions[2:] == [(a_job, "approved"), (b_job, "rejected-rerun"), (b_job, "held"), (b_job, "approved")]
    operators = {r["action"]: r.get("operator") for r in lines if r["event"] == "review" and r["job_id"] == a_job}
    assert operators["approved"] == "dpo-1"
    jobs = [r for r in lines if r["event"] == "job"]
    assert sorted(r["job_id"] for r in jobs) == sorted([a_job, b_job]) and {r["outcome"] for r in jobs} == {"anonymized"}
    assert next(r for r in jobs if r["job_id"] == b_job)["manual"]["regions"] == 2
    logs = dh.all_daemon_logs(tmp_path) + json.dumps(lines)
    for name in ("alice", "bob-at-gate", "masks.yaml"):
        assert name not in logs
