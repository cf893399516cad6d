"""The durability layer: temporary names, fsync, and publishing that never overwrites.

Every writer of outputs goes through here: the engine (``anonymizer.pipeline``), the part any
worker runs (``anonymizer.jobs``), the coordinator (``anonymizer.daemon``) and the Celery workers
(``anonymizer.scaleout``). It imports only the standard library, so the engine can use it without
importing the daemon. The rules:

- a file is written under a temporary dot-name in the folder of its final name (same
  filesystem: giving it its name is a rename or a link, never a copy), and startup clean-up
  recognises every such name (``is_temp_name``) and removes them (``remove_leftovers``, which
  the inbox's half-received uploads share);
- it gets its final name only complete and flushed: fsync the file, rename or link, fsync the
  folder so the new entry survives a power cut;
- nothing existing is ever overwritten: a taken name gets ``-1``, ``-2``... before the suffix
  (``place_no_overwrite``: ``os.link`` fails atomically when the name exists);
- a move across filesystems is copy, fsync, verify SHA-256, then unlink the source, never the
  other way round.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

CHUNK = 1 << 20
# A job's temporaries: "<TMP_PREFIX><job id><suffix>" beside the final name (the coordinator's
# copies and held outputs) and the work folder "<TMP_PREFIX><job id>.d" a remote worker writes in.
TMP_PREFIX = ".anonymizer-tmp-"
WORK_DIR_SUFFIX = ".d"
# In an input folder: id-named hard links (or symlinks, or copies) of the sources out on workers.
STAGE_DIR = ".anonymizer-stage"
# The engine's own partial writes: "<TEMP_PREFIX><12 hex><TEMP_MARK><ext>" beside its ``dst``.
TEMP_PREFIX = ".anonymizer-"
TEMP_MARK = ".partial"
_JOB_TEMP = TMP_PREFIX + "j-"  # job ids are "j-<hex>" (anonymizer.store.new_job_id)
_LINK_UNSUPPORTED = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK)


# ---------------------------------------------------------------------- temporary names


def is_temp_name(name: str) -> bool:
    """True for a temporary file of ours (a crash mid-job leaves them; startup removes them):
    the engine's partial writes and a job's named temporaries. Work folders are not files."""
    return (name.startswith(TEMP_PREFIX) and TEMP_MARK in name) or name.startswith(_JOB_TEMP)


def temp_path_for(dst: Path) -> Path:
    """A fresh hidden temporary name in ``dst``'s folder for the engine to write ``dst`` under."""
    return dst.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex[:12]}{TEMP_MARK}{dst.suffix.lower()}"


def temp_output_for(final: Path, job_id: str, suffix: str) -> Path:
    """The temporary name of job ``job_id``'s output, in the folder of its final name ``final``."""
    return final.parent / f"{TMP_PREFIX}{job_id}{suffix}"


def work_dir_for(output_root: Path, job_id: str) -> Path:
    """The folder a remote worker writes job ``job_id``'s output in: in the output folder's root,
    named by job id only, so that its path (which travels through the broker) carries no name of
    a file or sub-folder. Publishing renames out of it within the same share."""
    return output_root / f"{TMP_PREFIX}{job_id}{WORK_DIR_SUFFIX}"


def staged_source_for(input_root: Path, job_id: str, suffix: str) -> Path:
    """The id-named link under which a remote worker reads job ``job_id``'s source: the broker
    carries this path, never the source's own name (docs/scale-out.md, "What travels with a job")."""
    return input_root / STAGE_DIR / f"{job_id}{suffix.lower()}"


def job_of_staged_name(name: str) -> str:
    """The job id a staged source's name belongs to (``j-<hex>.mp4`` -> ``j-<hex>``)."""
    return name.split(".", 1)[0]


def job_of_work_dir(name: str) -> str | None:
    """The job id a work folder's name belongs to, or None for any other name."""
    if name.startswith(TMP_PREFIX) and name.endswith(WORK_DIR_SUFFIX) and len(name) > len(TMP_PREFIX + WORK_DIR_SUFFIX):
        return name[len(TMP_PREFIX) : -len(WORK_DIR_SUFFIX)]
    return None


def remove_leftovers(root: Path, is_leftover: Callable[[str], bool], *, skip_dot_dirs: bool) -> int:
    """Remove every file under ``root`` whose name ``is_leftover`` accepts; return how many.

    For start-up, when the caller is the only writer under ``root``: what a crash left half
    written goes before anything is written again. A file that cannot be removed is passed over
    (the next start tries again). ``skip_dot_dirs`` leaves hidden folders unvisited: in an output
    folder they are remote workers' work folders, which the coordinator reattaches, not leftovers.
    """
    removed = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if skip_dot_dirs:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if is_leftover(name):
                try:
                    os.unlink(os.path.join(dirpath, name))
                    removed += 1
                except OSError:
                    pass
    return removed


# ---------------------------------------------------------------------- flushing


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


def is_recorded_file(path: Path, size: int | None, sha256: str, every_64_mib: Callable[[], None] | None = None) -> bool:
    """Return True if ``path`` is a regular file (not a link) with the recorded size and SHA-256.

    The size is compared first, so a file that differs in size is never read.
    """
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return False
        return sha256_file(path, follow_symlinks=False, every_64_mib=every_64_mib)[0] == sha256
    except OSError:
        return False


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


def fsync_and_rename(tmp: Path, dst: Path) -> None:
    """Flush ``tmp`` to disk, rename it to ``dst`` (replacing it) and flush the folder entry.

    For names the writer owns (the engine's ``dst``, which the daemon makes a temporary name);
    a shared folder gets ``place_no_overwrite`` instead.
    """
    fsync_file(tmp)
    os.replace(tmp, dst)
    fsync_dir(dst.parent)


def copy_new_file(src: Path, dst: Path, *, mode: int = 0o644, progress: Callable[[], None] | None = None) -> None:
    """Copy ``src`` to a new file ``dst`` (never replacing one), then fsync it and its folder.

    ``progress`` is called every 64 MiB, so a long copy feeds the watchdog.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    with open(src, "rb") as fin, os.fdopen(os.open(dst, flags, mode), "wb") as fout:
        copied = 0
        while chunk := fin.read(CHUNK):
            fout.write(chunk)
            copied += len(chunk)
            if progress is not None and copied % (64 * CHUNK) < len(chunk):
                progress()
        fout.flush()
        os.fsync(fout.fileno())
    fsync_dir(dst.parent)


# ---------------------------------------------------------------------- publishing


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
            if exc.errno not in _LINK_UNSUPPORTED:
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
        if exc.errno not in _LINK_UNSUPPORTED:
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


def stage_source(src: Path, staged: Path) -> str:
    """Make ``staged`` (an id-named path, ``staged_source_for``) read as ``src``; return how:
    ``link`` (a hard link: the same inode, even if ``src`` is renamed meanwhile), ``symlink``
    where the share has no hard links, or ``copy`` where it has neither. Idempotent: a stage that
    already is ``src`` is kept (a job sent again after a coordinator restart)."""
    staged.parent.mkdir(exist_ok=True)
    try:
        if os.path.samefile(src, staged):
            return "link" if not staged.is_symlink() else "symlink"
    except OSError:
        pass
    staged.unlink(missing_ok=True)
    try:
        os.link(src, staged)
        return "link"
    except OSError as exc:
        if exc.errno not in _LINK_UNSUPPORTED:
            raise
    try:
        staged.symlink_to(src)
        return "symlink"
    except OSError as exc:
        if exc.errno not in _LINK_UNSUPPORTED:
            raise
    tmp = staged.with_name(f"{TMP_PREFIX}{staged.name}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, staged)
    return "copy"


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
