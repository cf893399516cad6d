"""The daemon's private state files and folders, and finding an output again by its name's HMAC.

Durable writing (temporary names, fsync, publishing that never overwrites) is
``anonymizer.durable``, shared with the engine and the workers.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

# The journal, the audit log and the keys name jobs, hashes and (while a job is open) files:
# readable by the service user only, whatever umask the daemon was started with.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as mode 0700 folders; return ``path``.

    A folder that already exists is left as the operator made it (an install step may have
    given it a group on purpose). ``chmod`` after ``mkdir`` because the umask may have removed
    bits from the mode asked for (0700 under umask 0777 would be 0000).
    """
    path = Path(path)
    missing = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # created meanwhile by someone else: theirs, not ours to change
        os.chmod(folder, PRIVATE_DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(path))
    return path


def make_private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if it does not exist; tighten it to 0600 if it does.

    Files of ours that an older version (or a permissive umask) left group- or world-readable
    are tightened; whether or not it existed, the file ends readable by its owner only. An
    existing file is changed by name and never opened: closing a descriptor drops every POSIX
    lock this process holds on the file, and SQLite's locks on a journal another thread has open
    are such locks (losing them lets a second connection reset the WAL index under the first).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    except FileExistsError:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path)) from None
        if stat.S_IMODE(st.st_mode) != PRIVATE_FILE_MODE:
            os.chmod(path, PRIVATE_FILE_MODE)
        return Path(path)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask may have removed bits from the mode asked for
    finally:
        os.close(fd)
    return Path(path)


def find_by_name_hmac(
    root: Path,
    hmac_of: Callable[[str], str],
    target: str,
    *,
    under: str = "",
    recursive: bool = True,
    every_1000: Callable[[], None] | None = None,
) -> str | None:
    """Return the relative path (POSIX form, relative to ``root``) of the regular file in the
    folder ``under`` (relative to ``root``; '' is ``root`` itself) or, when ``recursive``, below
    it, whose name HMAC is ``target``; or None.

    How an output is found again once the journal has erased its name and kept only
    ``hmac_of(relative path)``: only names are read (no stat, no hashing) until one matches, so a
    large output share costs one directory listing. Dot names (our temporaries) and symlinks are
    skipped. ``every_1000`` is called every 1,000 names, to feed the watchdog on a big share.
    """
    seen = 0
    stack = [under]
    while stack:
        prefix = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, prefix) if prefix else root))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{prefix}/{entry.name}" if prefix else entry.name
            seen += 1
            if every_1000 is not None and seen % 1000 == 0:
                every_1000()
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append(rel)
                elif entry.is_file(follow_symlinks=False) and hmac_of(rel) == target:
                    return rel
            except OSError:
                continue
    return None


def umask_file_mode() -> int:
    """The mode a new file gets from this process's umask (0666 minus the umask): the default
    mode of published outputs, what an engine's freshly written file has (0644 under umask 022).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # No /proc: read the umask by setting it (the daemon calls this at start-up, one thread).
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def set_output_mode(path: Path, mode: int) -> None:
    """Give a file about to be published the one mode every output gets (``output_mode``)."""
    if stat.S_IMODE(os.stat(path).st_mode) != mode:
        os.chmod(path, mode)


DONE_SUFFIX = ".done"
# ".masks.yaml": an operator's sidecar (anonymizer.review.sidecar), read with its source, never a job.
IGNORED_SUFFIXES = (".part", ".tmp", "~", ".crdownload", ".partial", DONE_SUFFIX, ".masks.yaml")
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})


def is_ignored_name(name: str) -> bool:
    """Return True for names that writers use while a file is incomplete, or that are not media."""
    lower = name.lower()
    return name.startswith(".") or lower.endswith(IGNORED_SUFFIXES) or lower in IGNORED_NAMES


def resolve_inside(root: Path, rel_path: str) -> Path:
    """Return ``root/rel_path``, refusing '..', absolute paths and any symlinked component.

    Raise OSError (ELOOP) if a component is a symlink: between scan and claim someone may have
    swapped a folder for a link pointing outside the input.
    """
    parts = Path(rel_path).parts
    if not parts or Path(rel_path).is_absolute() or any(p in ("..", ".", "") for p in parts):
        raise OSError("refusing path outside the input folder")
    path = root
    for part in parts:
        path = path / part
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise OSError(40, "refusing to follow a symlink inside the input folder")
    return path
