"""Durable, non-overwriting file operations shared by publishing, quarantine and retention.

Rules these helpers enforce:

- nothing existing is ever overwritten: a taken name gets ``-1``, ``-2``... before the suffix;
- a file appears under its final name only complete: hard link (or rename) from a temporary
  name, then the folder is fsynced so the new entry survives a power cut;
- a move across filesystems is copy, fsync, verify SHA-256, then unlink the source — never the
  other way round.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from anonymizer.jobs.run import TMP_PREFIX  # temporary outputs are named where workers write them

CHUNK = 1 << 20
# The journal, the audit log and the keys name jobs, hashes and (while a job is open) files:
# readable by the service user only, whatever umask the daemon was started with.
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def sha256_file(
    path: Path, *, follow_symlinks: bool = True, every_64_mib: Callable[[], None] | None = None
) -> tuple[str, int]:
    """Return (SHA-256 hex digest, size in bytes) of a file, read in 1 MiB chunks.

    ``every_64_mib`` is called as the hash progresses: hashing a multi-GB export takes long
    enough that the watchdog must be fed and a stop request honoured meanwhile.
    """
    flags = os.O_RDONLY | (0 if follow_symlinks else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if every_64_mib is not None and size % (64 * CHUNK) < len(chunk):
                every_64_mib()
    return digest.hexdigest(), size


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
    root: Path, hmac_of: Callable[[str], str], target: str, *, every_1000: Callable[[], None] | None = None
) -> str | None:
    """Return the relative path (POSIX form) of the regular file under ``root`` whose name HMAC
    is ``target``, or None.

    How an output is found again once the journal has erased its name and kept only
    ``hmac_of(relative path)``: only names are read (no stat, no hashing) until one matches, so a
    large output share costs one directory listing. Dot names (our temporaries) and symlinks are
    skipped. ``every_1000`` is called every 1,000 names, to feed the watchdog on a big share.
    """
    seen = 0
    stack = [""]
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
                    stack.append(rel)
                elif entry.is_file(follow_symlinks=False) and hmac_of(rel) == target:
                    return rel
            except OSError:
                continue
    return None


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename/link/unlink in ``path`` durable. Some network filesystems refuse: ignore that."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def candidate_names(path: Path) -> Iterator[Path]:
    """Yield ``path`` then ``stem-1.ext``, ``stem-2.ext``...: the names tried on a collision."""
    yield path
    suffixes = "".join(path.suffixes[-1:])
    stem = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    for i in range(1, 100_000):
        yield path.with_name(f"{stem}-{i}{suffixes}")
    raise OSError(errno.EEXIST, "no free name left")


def place_no_overwrite(tmp: Path, final: Path) -> Path:
    """Give the complete file ``tmp`` its final name without replacing anything. Return the name.

    ``os.link`` fails atomically when the name exists, which is what makes "never overwrite"
    hold even if another writer races us; shares that do not support hard links fall back to
    an exists-check plus rename.
    """
    for candidate in candidate_names(final):
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if candidate.exists() or candidate.is_symlink():
                continue
            os.rename(tmp, candidate)
            fsync_dir(candidate.parent)
            return candidate
        os.unlink(tmp)
        fsync_dir(candidate.parent)
        return candidate
    raise AssertionError("unreachable")


def move_no_overwrite(src: Path, dst: Path, *, expected_sha256: str | None = None) -> Path:
    """Move ``src`` to ``dst`` (or a free variant of it); return where it landed.

    Same filesystem: hard link + unlink (atomic, no overwrite). Across filesystems: copy to a
    temporary name beside ``dst``, fsync, check the SHA-256 when given, place, then unlink.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        for candidate in candidate_names(dst):
            try:
                os.link(src, candidate, follow_symlinks=False)
            except FileExistsError:
                continue
            os.unlink(src)
            fsync_dir(candidate.parent)
            fsync_dir(src.parent)
            return candidate
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
    tmp = dst.parent / f"{TMP_PREFIX}{os.getpid()}-{dst.name}"
    try:
        shutil.copyfile(src, tmp, follow_symlinks=False)
        fsync_file(tmp)
        if expected_sha256 is not None and sha256_file(tmp)[0] != expected_sha256:
            raise OSError(errno.EIO, "copy does not match the source's SHA-256")
        final = place_no_overwrite(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    os.unlink(src)
    fsync_dir(src.parent)
    return final


def write_new_file(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` (or a free variant of it) durably; never overwrite. Return the name."""
    for candidate in candidate_names(path):
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        except FileExistsError:
            continue
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(candidate.parent)
        return candidate
    raise AssertionError("unreachable")
