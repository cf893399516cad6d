"""Daemon config: relative paths, every error collected naming file and key, unsafe layouts refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from anonymizer.errors import ConfigError
from anonymizer.settings import daemon as module

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: dict) -> Path:
    (tmp_path / "profile.yaml").write_text(
        "detect: {plates: {enabled: false}}\nretention: {source: delete, after: 24h}\n"
    )
    (tmp_path / "in").mkdir(exist_ok=True)
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def base(**folder) -> dict:
    entry = {"name": "vms", "input": "in", "output": "out", "quarantine": "q", "profile": "profile.yaml"}
    entry.update(folder)
    return {"state_dir": "state", "audit_dir": "audit", "metrics": "127.0.0.1:9808", "folders": [entry]}


def test_a_valid_config_loads_with_paths_relative_to_its_own_folder(tmp_path: Path) -> None:
    cfg = module.load_daemon_config(write(tmp_path, base(poll_interval_s=2, settle_s=5)))
    f = cfg.folders[0]
    assert cfg.state_dir == tmp_path / "state" and f.input == tmp_path / "in" and f.output == tmp_path / "out"
    assert cfg.metrics == ("127.0.0.1", 9808)
    assert (f.poll_interval_s, f.settle_s, f.done_marker) == (2.0, 5.0, False)
    assert f.profile.retention.source == "delete" and f.profile.retention.after_s == 86400


def test_every_problem_is_reported_at_once_naming_the_file_and_the_key(tmp_path: Path) -> None:
    data = base(settle_s=-1, colour="red")
    data["metrics"] = "nonsense"
    del data["audit_dir"]
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        module.load_daemon_config(path)
    text = str(err.value)
    for fragment in ("'audit_dir': required", "'metrics'", "'folders[0].settle_s'", "'folders[0].colour': unknown key"):
        assert fragment in text
    assert all(line.startswith(str(path)) for line in text.splitlines())


def test_an_output_or_quarantine_inside_the_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"folders\[0\].output.*must not be, contain or lie inside"):
        module.load_daemon_config(write(tmp_path, base(output="in/anonymized")))
    with pytest.raises(ConfigError, match=r"folders\[0\].quarantine"):
        module.load_daemon_config(write(tmp_path, base(quarantine="in")))


def test_two_folders_with_the_same_name_or_overlapping_inputs_are_refused(tmp_path: Path) -> None:
    data = base()
    data["folders"].append(dict(data["folders"][0], output="out2", quarantine="q2"))
    with pytest.raises(ConfigError) as err:
        module.load_daemon_config(write(tmp_path, data))
    assert "names must be unique" in str(err.value) and "overlaps the input" in str(err.value)


def test_a_broken_profile_is_reported_under_the_folders_profile_key(tmp_path: Path) -> None:
    path = write(tmp_path, base())
    (tmp_path / "profile.yaml").write_text("mask: {method: blurr}\n")
    with pytest.raises(ConfigError, match=r"folders\[0\].profile.*blurr"):
        module.load_daemon_config(path)


def test_a_missing_input_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not an existing folder"):
        module.load_daemon_config(write(tmp_path, base(input="nowhere")))


def test_the_shipped_example_config_is_valid_apart_from_its_absent_system_folders() -> None:
    example = REPO / "systemd" / "daemon.example.yaml"
    with pytest.raises(ConfigError) as err:
        module.load_daemon_config(example)
    for line in str(err.value).splitlines():
        # On a developer machine /srv/... and /etc/anonymizer/... do not exist; nothing else may fail.
        assert "is not an existing folder" in line or "cannot read profile" in line, line


def test_the_demo_layout_is_a_valid_config_with_the_bundled_samples_waiting_in_its_input(tmp_path: Path) -> None:
    from anonymizer.daemon.commands import SAMPLES_DIR, write_demo

    config = write_demo(tmp_path / "demo")
    cfg = module.load_daemon_config(config)
    folder = cfg.folders[0]
    assert folder.input == tmp_path / "demo" / "in" and cfg.state_dir == tmp_path / "demo" / "state"
    assert folder.profile.retention.source == "keep"  # the demo never deletes what it was given
    # The photos and the sample video (the video path and tracking in the quick start), not the notices.
    media = sorted(p.name for p in SAMPLES_DIR.iterdir() if p.suffix in (".jpg", ".mp4")) if SAMPLES_DIR.is_dir() else []
    if SAMPLES_DIR.is_dir():
        assert "clip-walking-and-pause.mp4" in media
        assert sorted(p.name for p in folder.input.iterdir()) == media
    # Running it again neither rewrites the config nor copies anything twice.
    before = config.read_text()
    write_demo(tmp_path / "demo")
    assert config.read_text() == before and len(list(folder.input.iterdir())) == len(media)


def _broken_daemon_config(tmp_path: Path) -> Path:
    """A daemon config with one error of each kind, in folders that also have other errors."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "broken.yaml").write_text("mask: {method: blurr}\n")
    data = base()
    data["metrics"] = "nonsense"
    data["retry"] = {"max_attempts": 0}
    data["folders"][0]["profile"] = "broken.yaml"  # this folder fails on its profile...
    # ...and this one on its settle time, and both share a name and overlapping inputs.
    data["folders"].append(dict(base()["folders"][0], input="in/sub", output="out2", quarantine="q2", settle_s=-1))
    return write(tmp_path, data)


def test_a_broken_daemon_config_lists_every_error_at_once(tmp_path: Path) -> None:
    # Layout errors (a duplicate name, overlapping inputs) used to surface only once the folders'
    # own errors were fixed, because folders with errors were left out of the layout check.
    path = _broken_daemon_config(tmp_path)
    with pytest.raises(ConfigError) as err:
        module.load_daemon_config(path)
    text = str(err.value)
    for fragment in (
        "'metrics'",
        "'retry.max_attempts'",
        "'folders[0].profile'",
        "blurr",
        "'folders[1].settle_s'",
        "'folders[1].name': 'vms' is used by folders[0] too",
        "'folders[1].input'",
        "overlaps the input of folders[0]",
    ):
        assert fragment in text, fragment


def test_validate_config_tells_a_daemon_config_from_a_profile_and_checks_it_as_a_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from anonymizer.cli import main

    broken = _broken_daemon_config(tmp_path / "broken")
    (tmp_path / "good").mkdir()
    good = write(tmp_path / "good", base())
    assert main(["validate-config", str(good), str(broken), str(REPO / "profiles" / "cctv-fast.yaml")]) == 1
    out, err = capsys.readouterr()
    assert f"{good}: valid daemon config, 1 folder(s): vms" in out
    assert "cctv-fast.yaml: valid profile 'cctv-fast'" in out
    # Checked as a daemon config: its real errors, not a profile's "unknown key" for each daemon key.
    assert "unknown key" not in err
    assert "names must be unique" in err and "overlaps the input" in err and "blurr" in err
    assert "'folders[1].settle_s'" in err and "'metrics'" in err


def test_validate_config_exits_0_for_the_demo_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from anonymizer.cli import main
    from anonymizer.daemon.commands import write_demo

    assert main(["validate-config", str(write_demo(tmp_path / "demo"))]) == 0
    assert "valid daemon config" in capsys.readouterr().out


def test_a_required_key_set_to_null_is_an_error_not_an_absent_section(tmp_path: Path) -> None:
    data = base(output=None)
    data["state_dir"] = None
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        module.load_daemon_config(path)
    text = str(err.value)
    assert f"{path}: at 'state_dir': required key is null" in text
    assert f"{path}: at 'folders[0].output': required key is null" in text


def test_every_seconds_key_takes_one_duration_syntax(tmp_path: Path) -> None:
    # Issue 25: `settle_s: 30s` was refused while the profile's `retention.after: 30s` was accepted.
    data = base(settle_s="30s", poll_interval_s="1.5", rescan_interval_s="2h")
    data.update(stall_timeout_s="5m", retry={"base_s": "1m", "max_s": "1d"})
    cfg = module.load_daemon_config(write(tmp_path, data))
    f = cfg.folders[0]
    assert (f.settle_s, f.poll_interval_s, f.rescan_interval_s) == (30.0, 1.5, 7200.0)
    assert (cfg.stall_timeout_s, cfg.retry.base_s, cfg.retry.max_s) == (300.0, 60.0, 86400.0)
    with pytest.raises(ConfigError, match=r"'folders\[0\].settle_s': expected a duration like 30s"):
        module.load_daemon_config(write(tmp_path, base(settle_s="thirty")))
    with pytest.raises(ConfigError, match=r"'stall_timeout_s': 1.0 is below the minimum"):
        module.load_daemon_config(write(tmp_path, {**base(), "stall_timeout_s": "1s"}))


def test_every_declared_key_named_in_seconds_is_a_duration() -> None:
    from anonymizer.config import Profile
    from anonymizer.schema import keys_of
    from anonymizer.settings.api import ApiConfig
    from anonymizer.settings.scaleout import WorkerConfig

    seen, pending = set(), [module.DaemonConfig, Profile, WorkerConfig, ApiConfig]
    named_s = []
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for k in keys_of(cls):
            if k.section is not None:
                pending.append(k.section)
            elif k.key.endswith("_s") or k.key == "after":
                named_s.append((cls.__name__, k.key, k.is_duration))
    assert len(named_s) >= 10 and all(d for _, _, d in named_s), named_s
