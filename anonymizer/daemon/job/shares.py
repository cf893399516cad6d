"""The mount guard: nothing is read, published or retired on a share that is not mounted.

When a share drops, its path resolves to the bare mount-point folder on the local disk: an output
"published" there is hidden once the share returns, and a source retired on the strength of it
would be lost. The guard remembers which mount held each folder at start-up and refuses a path
whose mount changed; the same folder (device and inode), or a remount at the same mount point, is
fine.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from anonymizer.settings.daemon import FolderConfig, mount_of


class ShareUnavailable(OSError):
    """A folder's share is not mounted where it was at start-up (its path now lies on the disk
    under the mount point). Nothing may be read, published or retired there until it returns;
    waiting for it does not count as a failed attempt."""


def folder_paths(folder: FolderConfig) -> list[Path]:
    """Every folder a job of ``folder`` reads or writes (input, output, quarantine, move_to)."""
    paths = [folder.input, folder.output, folder.quarantine]
    if folder.retention_move_to is not None:
        paths.append(folder.retention_move_to)
    return paths


@dataclass
class MountGuard:
    """Which mount (mount point, device, inode) held each folder when it was first seen."""

    mounts: dict[Path, tuple[str, int, int]] = field(default_factory=dict)

    def note(self, folders: Iterable[FolderConfig]) -> None:
        """Remember which mount holds each folder (at start-up, and for folders added by a reload)."""
        for folder in folders:
            for path in folder_paths(folder):
                if path not in self.mounts:
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue  # created later (move_to); nothing to compare against
                    self.mounts[path] = (mount_of(path)[0], st.st_dev, st.st_ino)

    def require(self, *paths: Path) -> None:
        """Raise ShareUnavailable if a folder's mount point has changed since it was noted."""
        for path in paths:
            expected = self.mounts.get(path)
            if expected is None:
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                # Removed by someone (it is re-created) or gone with its share (it is not).
                if mount_of(path)[0] != expected[0]:
                    raise ShareUnavailable(errno.ENOTCONN, "the folder's share is not mounted") from None
                continue
            if (st.st_dev, st.st_ino) == expected[1:]:
                continue
            if mount_of(path)[0] != expected[0]:
                raise ShareUnavailable(errno.ENOTCONN, "the folder's share is not mounted")
            self.mounts[path] = (expected[0], st.st_dev, st.st_ino)  # remounted in place
