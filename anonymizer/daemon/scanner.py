"""Polling scanner for input folders on SMB/NFS mounts, with settle tracking.

inotify never sees writes made by other clients of a network share, so the folder is listed with
``os.scandir`` every ``poll_interval_s``. A file counts as complete only once its size, mtime and
inode stayed unchanged for ``settle_s`` *and* across at least two scans (a writer that pauses
longer than one poll interval resets the clock). With ``done_marker`` the writer signals
completion itself by creating ``<name>.done`` beside the file.

Temporary names are never offered: ``*.part``, ``*.tmp``, ``*~``, dotfiles (which covers
``.nfsXXXX`` silly-renames and our own ``.anonymizer-tmp-*``), Windows' ``Thumbs.db`` /
``desktop.ini``, and the ``.done`` markers. Symlinks are never followed, neither to files nor to
folders, so nothing outside the input folder can be pulled in through a link.
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from anonymizer.fsutil import DONE_SUFFIX, is_ignored_name
from anonymizer.jobs.settle import Settling
from anonymizer.store import FileStat


@dataclass(frozen=True)
class Candidate:
    """A complete file: its path relative to the input folder (POSIX separators) and its stat."""

    rel_path: str
    stat: FileStat


@dataclass
class ScanStats:
    """Counts from the last scan, for logs and metrics (no names)."""

    files: int = 0
    settling: int = 0
    skipped_links: int = 0
    errors: int = 0


@dataclass
class Scanner:
    """Scans one input folder; ``scan()`` returns files that became complete since last reported.

    Args:
        root: the input folder.
        settle_s: how long size/mtime/inode must stay unchanged.
        done_marker: require ``<name>.done`` beside a file instead of waiting ``settle_s``.
        clock: monotonic clock, injectable for tests.
        scandir: ``os.scandir`` or a stand-in, injectable for tests (as in watchdog's emitter).
    """

    root: Path
    settle_s: float
    done_marker: bool = False
    clock: Callable[[], float] = time.monotonic
    scandir: Callable[[str], os._ScandirIterator[str]] = os.scandir
    last: ScanStats = field(default_factory=ScanStats)
    _settling: Settling[str, FileStat] = field(init=False)

    def __post_init__(self) -> None:
        # The settling rule is the buckets' too (anonymizer.jobs.settle).
        self._settling = Settling(self.settle_s)

    def forget_reported(self) -> None:
        """Make the next scan offer every complete file again (the periodic full reconciliation)."""
        self._settling.forget_reported()

    def scan(self) -> list[Candidate]:
        """List the folder once; return complete files not reported before in this state."""
        now = self.clock()
        stats = ScanStats()
        current: dict[str, FileStat] = {}
        markers: set[str] = set()
        for rel, st, is_marker in self._walk(stats):
            if is_marker:
                markers.add(rel[: -len(DONE_SUFFIX)])
            else:
                current[rel] = st
        ready: list[Candidate] = []
        for rel, st in current.items():
            seen = self._settling.look(rel, st, now)
            if self.done_marker:
                complete = rel in markers and seen.seen_twice
            else:
                complete = self._settling.settled(seen, now)
            if not complete:
                stats.settling += 1
            elif not seen.reported:
                seen.reported = True
                ready.append(Candidate(rel, st))
        self._settling.keep_only(current)
        stats.files = len(current)
        self.last = stats
        return sorted(ready, key=lambda c: c.rel_path)

    def _walk(self, stats: ScanStats) -> Iterator[tuple[str, FileStat, bool]]:
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            try:
                it = self.scandir(str(self.root / rel_dir) if rel_dir else str(self.root))
            except OSError:
                # A folder vanished mid-scan or the share hiccupped: try again next poll.
                stats.errors += 1
                continue
            with it:
                for entry in it:
                    name = entry.name
                    rel = f"{rel_dir}/{name}" if rel_dir else name
                    marker = self.done_marker and name.endswith(DONE_SUFFIX) and not name.startswith(".")
                    if is_ignored_name(name) and not marker:
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        stats.errors += 1
                        continue
                    if stat_mod.S_ISLNK(st.st_mode):
                        stats.skipped_links += 1
                    elif stat_mod.S_ISDIR(st.st_mode):
                        stack.append(rel)
                    elif stat_mod.S_ISREG(st.st_mode):
                        yield rel, FileStat(st.st_size, st.st_mtime_ns, st.st_ino), marker
