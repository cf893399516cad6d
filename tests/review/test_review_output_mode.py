"""One file mode for every published output, direct or approved after review, through the real
daemon and CLI; and `review show` names the operator of the last decision.

Issue 25: approved review outputs were published 0600 (the mode of the copy held in state_dir),
direct ones 0644, so a downstream reader of the share could be locked out of approved files; and
`review show` said `operator: None` after a rejection by `dpo-7`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import daemon_helpers as dh
import pytest
import yaml
from support import file_mode as mode

pytestmark = pytest.mark.skipif(len(dh.FACE_SAMPLES) < 2, reason="samples/faces-*.jpg are missing")
TIMEOUT_S = 90


def review(config: Path, *args: str) -> dict:
    run = dh.run_cli("review", *args[:1], "--config", str(config), "--json", *args[1:])
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def held_jobs(config: Path, rounds: int = 1) -> list[dict]:
    return [h for h in review(config, "list") if h["rounds"] == rounds]  # type: ignore[union-attr]


def test_approved_and_direct_outputs_get_one_mode_and_review_show_names_the_last_operator(tmp_path: Path) -> None:
    fast = dh.write_fast_profile(tmp_path / "fast.yaml")
    held = tmp_path / "held.yaml"
    held.write_text(yaml.safe_dump({**yaml.safe_load(fast.read_text()), "review": "required"}))
    folders = [dh.folder_entry(tmp_path, "direct", fast), dh.folder_entry(tmp_path, "held", held)]
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", folders)
    shutil.copyfile(dh.FACE_SAMPLES[0], tmp_path / "direct" / "in" / "a.jpg")
    shutil.copyfile(dh.FACE_SAMPLES[0], tmp_path / "held" / "in" / "a.jpg")
    shutil.copyfile(dh.FACE_SAMPLES[1], tmp_path / "held" / "in" / "b.jpg")
    umask = os.umask(0o022)
    os.umask(umask)
    default_mode = 0o666 & ~umask  # the daemon inherits this process's umask

    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        direct = tmp_path / "direct" / "out" / "a.jpg"
        dh.wait_for(direct.exists, TIMEOUT_S, "the direct output")
        waiting = dh.wait_for(lambda: len(held_jobs(config)) == 2 and held_jobs(config), TIMEOUT_S, "two held")
        first, second = sorted(h["job_id"] for h in waiting)
        result = review(config, "approve", first, "--operator", "dpo-1", "--wait", "30")
        assert result["state"] == "published", result
        (approved,) = dh.files_under(tmp_path / "held" / "out")
        assert mode(approved) == mode(direct) == default_mode, (oct(mode(approved)), oct(mode(direct)))

        # A rejection with masks runs the job again and holds it again: the decision's operator stays.
        masks = tmp_path / "more.masks.yaml"
        masks.write_text("regions:\n  - box: [0, 0, 40, 30]\n")
        review(config, "reject", second, "--operator", "dpo-7", "--masks", str(masks), "--wait", "30")
        dh.wait_for(lambda: held_jobs(config, rounds=2), TIMEOUT_S, "the rejected job held again")
        shown = review(config, "show", second)
        assert (shown["review"], shown["rounds"], shown["operator"]) == ("waiting", 2, "dpo-7")
        assert daemon.stop() == 0

    # A configured mode applies to both kinds alike.
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**data, "output_mode": "0604"}))
    shutil.copyfile(dh.FACE_SAMPLES[1], tmp_path / "direct" / "in" / "b.jpg")
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        direct_b = tmp_path / "direct" / "out" / "b.jpg"
        dh.wait_for(direct_b.exists, TIMEOUT_S, "the second direct output")
        review(config, "approve", second, "--operator", "dpo-1", "--wait", "30")
        (approved_b,) = set(dh.files_under(tmp_path / "held" / "out")) - {approved}
        assert mode(direct_b) == mode(approved_b) == 0o604, (oct(mode(direct_b)), oct(mode(approved_b)))
        assert daemon.stop() == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0640", 0o640), ("0o600", 0o600), (0o644, 0o644), ("0755", None), ("640", 0o640), ("rw", None), (True, None)],
)
def test_output_mode_is_octal_read_and_write_bits(tmp_path: Path, raw: object, expected: int | None) -> None:
    from anonymizer.errors import ConfigError
    from anonymizer.settings.daemon import load_daemon_config

    fast = dh.write_fast_profile(tmp_path / "fast.yaml")
    config = dh.write_daemon_config(
        tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "direct", fast)], output_mode=raw
    )
    if expected is None:
        with pytest.raises(ConfigError, match="output_mode"):
            load_daemon_config(config)
    else:
        assert load_daemon_config(config).output_mode == expected
