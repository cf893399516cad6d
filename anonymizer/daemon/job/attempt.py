"""One attempt at a claimed job: what the coordinator knows of it between the checks before the
engine call and the verification after it, plus the source-file facts every step re-checks.

An ``Attempt`` is filled in step by step (``prepare`` sets the source, engine and planned names;
the remote runner rebinds its ``log`` with the task id), so it is a plain typed dataclass rather
than a frozen one; the job row it carries is the journal's frozen ``Job``.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from anonymizer.errors import MediaError
from anonymizer.fsutil import resolve_inside
from anonymizer.jobs.run import EngineLike
from anonymizer.mask.regions import ManualMasks
from anonymizer.media.sniff import Sniffed
from anonymizer.settings.daemon import FolderConfig
from anonymizer.store import FileStat, Job, display_rel

# ``progress(*args, **kwargs)``: the engine's progress callback, also called while hashing and
# copying; it feeds the watchdog and raises StopRequested on SIGTERM (Lifecycle.progress).
Progress = Callable[..., None]


class Log(Protocol):
    """The part of a structlog bound logger the lifecycle uses (events by name, values by key)."""

    def bind(self, **values: object) -> Log: ...

    def info(self, event: str, **values: object) -> object: ...

    def warning(self, event: str, **values: object) -> object: ...

    def error(self, event: str, **values: object) -> object: ...


class StopRequested(BaseException):
    """Raised from the progress callback to abandon a job on SIGTERM; the job is requeued.

    A BaseException so that an engine's ``except Exception`` cannot turn it into a MediaError
    (which would quarantine a perfectly good input).
    """


@dataclass
class Attempt:
    """One attempt at a claimed job, filled in as it goes."""

    job: Job
    folder: FolderConfig
    log: Log
    started: float  # monotonic
    src: Path = field(default=Path())
    final: Path = field(default=Path())
    planned_tmp: Path = field(default=Path())
    sniffed: Sniffed | None = None
    kind: str = ""
    size: int = 0
    engine: EngineLike | None = None
    tmp: Path | None = None  # written and not yet published: removed when the attempt ends
    masks: ManualMasks | None = None  # the operator's sidecar masks (review.masks_for_job), or None

    def require_engine(self) -> EngineLike:
        """The engine ``prepare`` chose; raise AssertionError (a bug) before that."""
        assert self.engine is not None, "the attempt was not prepared"
        return self.engine


def file_stat(path: Path) -> FileStat:
    """Given a source path, return its (size, mtime, inode) without following a symlink.

    Raise MediaError when it is not a regular file and OSError when it cannot be read.
    """
    st = os.lstat(path)
    if not stat_mod.S_ISREG(st.st_mode):
        raise MediaError("input is not a regular file")
    return FileStat(st.st_size, st.st_mtime_ns, st.st_ino)


# Why a job whose path now leads outside its input folder is dropped (recorded as vanished).
OUTSIDE_INPUT = "path no longer lies inside the input folder (symlink)"


def source_path(folder: FolderConfig, job: Job) -> Path | None:
    """``job``'s source inside its input folder, or None when a folder on the path was swapped
    for a symlink since the scan (not ours to read). Raise FileNotFoundError when it is gone."""
    try:
        return resolve_inside(folder.input, job.rel_path)
    except FileNotFoundError:
        raise
    except OSError:
        return None


def source_unchanged(folder: FolderConfig, job: Job) -> bool:
    """Return True while ``job``'s source is still the version that was journaled (and hashed)."""
    try:
        return file_stat(resolve_inside(folder.input, job.rel_path)) == job.stat
    except (OSError, MediaError):
        return False


def log_context(job: Job, folder: FolderConfig) -> dict[str, object]:
    """What every log line of ``job`` carries: its id, folder and hash; its path only when the
    folder's profile allows file names in logs (privacy: never by default)."""
    ctx: dict[str, object] = {"job_id": job.id, "folder": folder.name}
    if job.input_sha256:
        ctx["sha256"] = job.input_sha256
    if folder.profile.privacy.log_file_names:
        ctx["path"] = display_rel(job.rel_path)
    return ctx
