"""Private files and folders: 0600 / 0700 whatever the umask, without disturbing SQLite's locks."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from support import file_mode as mode

from anonymizer import fsutil as module
from anonymizer.daemon.commands import write_demo


def test_files_and_folders_are_created_private_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        folder = module.make_private_dir(tmp_path / "a" / "b")
        made = module.make_private_file(folder / "f")
    finally:
        os.umask(old)
    assert (mode(tmp_path / "a"), mode(folder), mode(made)) == (0o700, 0o700, 0o600)


def test_a_umask_that_removes_owner_bits_still_gives_0600_and_0700(tmp_path: Path) -> None:
    old = os.umask(0o777)
    try:
        folder = module.make_private_dir(tmp_path / "x")
        made = module.make_private_file(folder / "f")
    finally:
        os.umask(old)
    assert (mode(folder), mode(made)) == (0o700, 0o600)


def test_an_existing_wide_file_is_tightened_and_an_existing_folder_left_alone(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir(mode=0o750)
    (tmp_path / "shared").chmod(0o750)
    wide = tmp_path / "shared" / "journal.sqlite3"
    wide.write_bytes(b"data")
    wide.chmod(0o644)
    module.make_private_dir(tmp_path / "shared")
    module.make_private_file(wide)
    assert (mode(tmp_path / "shared"), mode(wide), wide.read_bytes()) == (0o750, 0o600, b"data")


def test_tightening_a_file_keeps_the_posix_locks_this_process_holds_on_it(tmp_path: Path) -> None:
    # SQLite locks its database and -shm with POSIX locks, which close() of *any* descriptor of
    # the file in this process releases. Had make_private_file opened the existing journal, a
    # second connection in the daemon could reset the WAL index under the first (SIGBUS).
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"x")
    path.chmod(0o644)
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        module.make_private_file(path)
        probe = (
            "import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(3)\n"
        )
        held = subprocess.run([sys.executable, "-c", probe, str(path)], check=False).returncode
    finally:
        os.close(fd)
    assert held == 3, "the lock was dropped"
    assert mode(path) == 0o600


def test_the_demo_makes_its_state_and_audit_folders_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_demo(tmp_path / "demo")
    finally:
        os.umask(old)
    assert mode(tmp_path / "demo" / "state") == 0o700
    assert mode(tmp_path / "demo" / "audit") == 0o700
    assert mode(tmp_path / "demo" / "out") == 0o755  # outputs are for their consumers
