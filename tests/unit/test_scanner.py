"""The polling scanner: settle tracking, ignored names, symlinks, sub-folders, .done markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import FakeClock

from anonymizer.daemon import scanner as module
from anonymizer.fsutil import resolve_inside


def make_scanner(root: Path, settle_s: float = 5.0, **kw) -> tuple[module.Scanner, FakeClock]:
    clock = FakeClock(1000.0)
    return module.Scanner(root, settle_s=settle_s, clock=clock, **kw), clock


def names(cands: list[module.Candidate]) -> list[str]:
    return [c.rel_path for c in cands]


def test_a_file_is_offered_only_after_it_stayed_unchanged_for_settle_s_across_two_scans(tmp_path: Path) -> None:
    scanner, clock = make_scanner(tmp_path, settle_s=5)
    (tmp_path / "a.jpg").write_bytes(b"x" * 10)
    assert scanner.scan() == []  # first sighting
    clock.now += 4.9
    assert scanner.scan() == []  # second scan, but not settled long enough
    clock.now += 0.2
    found = scanner.scan()
    assert names(found) == ["a.jpg"] and found[0].stat.size == 10


def test_one_scan_is_never_enough_even_with_settle_zero(tmp_path: Path) -> None:
    scanner, _clock = make_scanner(tmp_path, settle_s=0)
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert scanner.scan() == []
    assert names(scanner.scan()) == ["a.jpg"]


def test_a_growing_file_restarts_the_settle_clock(tmp_path: Path) -> None:
    scanner, clock = make_scanner(tmp_path, settle_s=5)
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x" * 10)
    scanner.scan()
    clock.now += 4
    with path.open("ab") as fh:
        fh.write(b"more")
    assert scanner.scan() == []
    clock.now += 4
    assert scanner.scan() == []  # 4 s since the last change
    clock.now += 1.5
    assert names(scanner.scan()) == ["clip.mp4"]


def test_a_replaced_file_with_the_same_size_is_a_new_version(tmp_path: Path) -> None:
    scanner, clock = make_scanner(tmp_path, settle_s=1)
    path = tmp_path / "a.jpg"
    path.write_bytes(b"1111")
    scanner.scan()
    clock.now += 2
    first = scanner.scan()
    (tmp_path / "new").write_bytes(b"2222")
    os.replace(tmp_path / "new", path)  # new inode, same size
    assert scanner.scan() == []
    clock.now += 2
    second = scanner.scan()
    assert names(second) == ["a.jpg"] and second[0].stat.inode != first[0].stat.inode


@pytest.mark.parametrize(
    "name",
    ["clip.mp4.part", "clip.mp4.tmp", "clip.mp4~", ".hidden.jpg", ".nfs000000001234", "Thumbs.db", "desktop.ini"],
)
def test_temporary_and_hidden_names_are_never_offered(tmp_path: Path, name: str) -> None:
    scanner, clock = make_scanner(tmp_path, settle_s=0)
    (tmp_path / name).write_bytes(b"x")
    scanner.scan()
    clock.now += 10
    assert scanner.scan() == []


def test_symlinks_to_files_or_folders_outside_the_input_are_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "in", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    os.symlink(outside / "secret.jpg", root / "link.jpg")
    os.symlink(outside, root / "linked-dir")
    scanner, _clock = make_scanner(root, settle_s=0)
    scanner.scan()
    assert scanner.scan() == []
    assert scanner.last.skipped_links == 2


def test_subfolders_are_walked_and_reported_with_posix_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "site-a" / "cam1").mkdir(parents=True)
    (tmp_path / "site-a" / "cam1" / "x.mp4").write_bytes(b"x")
    (tmp_path / ".hidden-dir").mkdir()
    (tmp_path / ".hidden-dir" / "y.mp4").write_bytes(b"y")
    scanner, _clock = make_scanner(tmp_path, settle_s=0)
    scanner.scan()
    assert names(scanner.scan()) == ["site-a/cam1/x.mp4"]


def test_in_done_marker_mode_a_file_waits_for_its_marker_not_for_settle(tmp_path: Path) -> None:
    scanner, clock = make_scanner(tmp_path, settle_s=3600, done_marker=True)
    (tmp_path / "a.mp4").write_bytes(b"x")
    scanner.scan()
    clock.now += 10
    assert scanner.scan() == []
    (tmp_path / "a.mp4.done").write_bytes(b"")
    assert names(scanner.scan()) == ["a.mp4"]


def test_a_complete_file_is_reported_once_until_a_full_rescan_forgets_what_was_reported(tmp_path: Path) -> None:
    scanner, _clock = make_scanner(tmp_path, settle_s=0)
    (tmp_path / "a.jpg").write_bytes(b"x")
    scanner.scan()
    assert names(scanner.scan()) == ["a.jpg"]
    assert scanner.scan() == []
    scanner.forget_reported()
    assert names(scanner.scan()) == ["a.jpg"]


def test_a_vanished_folder_counts_as_a_scan_error_not_a_crash(tmp_path: Path) -> None:
    scanner, _ = make_scanner(tmp_path / "missing", settle_s=0)
    assert scanner.scan() == []
    assert scanner.last.errors == 1


def test_resolve_inside_refuses_dotdot_absolute_paths_and_symlinked_components(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.jpg").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "outside", root / "sneaky")
    assert resolve_inside(root, "real/a.jpg") == root / "real" / "a.jpg"
    for bad in ("../outside/a.jpg", "/etc/passwd", "sneaky/a.jpg"):
        with pytest.raises(OSError):
            resolve_inside(root, bad)
