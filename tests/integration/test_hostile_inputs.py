"""Every hostile or broken input, given to the real CLI: refused with a reason, nothing left behind.

The CLI runs as a subprocess (``python -m anonymizer process ... --out DIR --json``) with the
real engine and detectors. Loading the detectors takes seconds, so each scenario runs the CLI
once over all its inputs (module-scoped fixtures) and the parametrized tests then check each
input's own line of the result. What a Data Protection Officer relies on:

* a refused input gets ``ok: false`` with a one-line reason that does not quote the file name,
  the run exits non-zero within a deadline (a FIFO or an endless stream must not hang it), and
  the output folder stays empty: no output, no temporary file;
* sources are left untouched, and nothing outside the input folder ends up in an output
  (playlists are never opened; symlinks found inside a folder are never followed);
* a valid video under a wrong extension, or a valid file under a hostile name, is processed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hostile
import pytest
import yaml

from anonymizer.media.sniff import expected_suffixes, sniff

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 300

# Refused by the engine after the allow-list let them through: the wording is the engine's own,
# so only the reason's shape is checked for these.
ENGINE_LEVEL = {
    "truncated_mp4_moov_at_end",
    "truncated_avi",
    "truncated_mkv",
    "huge_dimensions_video",
    "large_dimensions_video",
    "endless_declared_video",
}
LINKS = {"symlink_outside", "symlink_to_device"}
SECRET = "Qv7PrivateName"


def quick_profile(path: Path, **limits: int) -> Path:
    """Faces only at one scale, ultrafast encoding: the hostile checks do not need recall."""
    data = {
        "name": "hostile-quick",
        "detect": {"device": "cpu", "faces": {"scales": [1.0]}, "plates": {"enabled": False}},
        "output": {"preset": "ultrafast"},
    }
    if limits:
        data["limits"] = limits
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class Run:
    """One CLI run: exit code, wall time, stderr, and each input's JSON line by input path."""

    returncode: int
    seconds: float
    stderr: str
    lines: dict[str, dict]


def run_process(inputs: list[Path], out: Path, profile: Path) -> Run:
    """Run ``anonymizer process INPUTS --out OUT --json`` once; bytes in and out so odd names survive."""
    env = dict(os.environ, YOLO_OFFLINE="1", PYTHONUNBUFFERED="1")
    argv = [sys.executable, "-m", "anonymizer", "process", *map(os.fspath, inputs)]
    argv += ["--out", os.fspath(out), "--json", "--profile", os.fspath(profile)]
    started = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, timeout=DEADLINE_S, check=False)
    lines = {}
    for raw in result.stdout.decode(errors="surrogateescape").splitlines():
        if raw.strip():
            record = json.loads(raw)
            lines[record["input"]] = record
    return Run(result.returncode, time.monotonic() - started, result.stderr.decode(errors="replace"), lines)


def snapshot(folder: Path) -> dict[str, str]:
    """Map every entry under ``folder`` (links not followed) to a digest of what it is."""
    found: dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            if path.is_symlink():
                found[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[str(path)] = "other"
    return found


@dataclass
class Scenario:
    root: Path
    inputs: dict[str, Path]
    before: dict[str, str]
    run: Run
    out: Path


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """Build every hostile input (each in its own sub-folder) and run the CLI over the folder.

    Folder mode is how a user points the CLI at a share: links inside it must not be followed.
    """
    root = tmp_path_factory.mktemp("hostile")
    inbox, outside, out = root / "inbox", root / "outside", root / "out"
    outside.mkdir()
    inputs = {}
    for key, case in hostile.REJECTED.items():
        (inbox / key).mkdir(parents=True)
        built = case.build(inbox / key, outside)
        # A distinctive token in every name, so that a reason quoting the name is caught.
        inputs[key] = built.rename(built.with_name(f"{SECRET}_{built.name}"))
    profile = quick_profile(root / "quick.yaml")
    before = snapshot(root)
    run = run_process([inbox], out, profile)
    return Scenario(root, inputs, before, run, out)


@pytest.mark.parametrize("key", sorted(hostile.REJECTED))
def test_cli_refuses_hostile_input_with_a_one_line_reason_that_does_not_name_the_file(
    refused: Scenario, key: str
) -> None:
    source = refused.inputs[key]
    line = refused.run.lines.get(str(source))

    assert line is not None, f"no result line for this input; stderr: {refused.run.stderr[-2000:]}"
    assert line["ok"] is False, f"accepted a hostile input: {line}"
    reason = line["reason"]
    assert reason and "\n" not in reason
    assert SECRET not in reason, f"reason quotes the file name: {reason!r}"
    if key not in ENGINE_LEVEL:
        words = hostile.REJECTED[key].reason_words
        assert any(word in reason.lower() for word in words), f"reason {reason!r} mentions none of {words}"


def test_cli_run_over_hostile_folder_exits_non_zero_in_time_and_leaves_nothing_behind(refused: Scenario) -> None:
    assert refused.run.returncode == 1, refused.run.stderr[-2000:]
    assert refused.run.seconds < DEADLINE_S
    assert len(refused.run.lines) == len(hostile.REJECTED)
    assert [p for p in refused.out.rglob("*") if not p.is_dir()] == [], "an output or temporary file was left"
    after = snapshot(refused.root)
    changed = {k for k in refused.before.keys() | after.keys() if refused.before.get(k) != after.get(k)}
    # Only the (empty) output sub-folders may have appeared.
    assert all(Path(k).is_relative_to(refused.out) and Path(k).is_dir() for k in changed), sorted(changed)


def test_cli_refuses_hostile_files_named_directly_too(tmp_path: Path) -> None:
    # Named one by one, as a user would type them; links are left out: a link named on the
    # command line is the user's explicit choice and is followed by design.
    outside, out = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    inputs = []
    for key, case in sorted(hostile.REJECTED.items()):
        if key not in LINKS:
            (tmp_path / key).mkdir()
            inputs.append(case.build(tmp_path / key, outside))

    run = run_process(inputs, out, quick_profile(tmp_path / "quick.yaml"))

    assert run.returncode == 1
    assert {k: v["ok"] for k, v in run.lines.items()} == {str(p): False for p in inputs}
    assert [p for p in out.rglob("*") if not p.is_dir()] == []


def test_a_video_over_the_frame_limit_is_refused_while_decoding_as_an_endless_stream_would_be(tmp_path: Path) -> None:
    # The header can lie (or say nothing, like a live MPEG-TS): the limit must hold while decoding.
    source = hostile.make_gradient_video(tmp_path / "long.ts", container="mpegts", frames=30)
    out = tmp_path / "out"

    run = run_process([source], out, quick_profile(tmp_path / "limited.yaml", max_frames=10))

    assert run.returncode == 1
    assert run.lines[str(source)]["ok"] is False
    assert "max_frames" in run.lines[str(source)]["reason"]
    assert [p for p in out.rglob("*") if not p.is_dir()] == []


@pytest.fixture(scope="module")
def accepted(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """Valid media with a wrong extension or a hostile name, named directly on the command line."""
    root = tmp_path_factory.mktemp("odd")
    inbox, outside, out = root / "inbox", root / "outside", root / "out"
    inbox.mkdir()
    outside.mkdir()
    inputs = {key: case.build(inbox, outside) for key, case in hostile.ACCEPTED.items()}
    inputs |= {key: hostile.hostile_named(inbox, key) for key in hostile.HOSTILE_NAMES}
    before = snapshot(inbox)
    run = run_process(list(inputs.values()), out, quick_profile(root / "quick.yaml"))
    return Scenario(root, inputs, before, run, out)


@pytest.mark.parametrize("key", sorted(hostile.ACCEPTED) + sorted(hostile.HOSTILE_NAMES))
def test_cli_processes_valid_media_with_a_wrong_extension_or_hostile_name_into_the_output_folder(
    accepted: Scenario, key: str
) -> None:
    source = accepted.inputs[key]
    line = accepted.run.lines.get(str(source))

    assert line is not None and line["ok"] is True, line or accepted.run.stderr[-2000:]
    output = Path(line["output"])
    assert output.is_file() and output.parent.resolve() == accepted.out.resolve()
    content = sniff(output)
    assert content.kind == sniff(source).kind
    assert output.suffix.lower() in expected_suffixes(content.format), "output suffix disagrees with its content"
    if content.kind == "video":
        assert hostile.count_frames(output) == hostile.count_frames(source)


def test_cli_writes_one_output_per_odd_input_and_nothing_anywhere_else(accepted: Scenario) -> None:
    assert accepted.run.returncode == 0, accepted.run.stderr[-2000:]
    outputs = sorted(p for p in accepted.out.rglob("*"))
    assert len(outputs) == len(accepted.inputs) and all(p.parent == accepted.out for p in outputs)
    assert snapshot(accepted.root / "inbox") == accepted.before
    assert sorted(p.name for p in accepted.root.iterdir()) == ["inbox", "out", "outside", "quick.yaml"]
    assert list((accepted.root / "outside").iterdir()) == []
