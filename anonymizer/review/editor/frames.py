"""Frames of a held output (or, with the source scope, of its source) as JPEG, by frame index.

Decoded server-side from the file itself: exact (the index counts decoded frames from 0, as the
sidecar's ``start_frame`` does) and independent of what the browser can play. Stepping forward,
as a reviewer and the editor's player do, continues one open decoder per file instead of
decoding from the start each time; a step back reopens it.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anonymizer.config import LimitsSpec

JPEG_QUALITY = 90
OPEN_DECODERS = 4  # files with an open decoder at once (a few reviewers, each on one clip)


def encode_jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


class _Cursor:
    """An open decoder on one file and the index of the next frame it yields."""

    def __init__(self, path: Path, limits: LimitsSpec) -> None:
        self.path, self.limits = path, limits
        self.lock = threading.Lock()
        self.frames: Iterator[Any] = iter(())
        self.reset()

    def reset(self) -> None:
        from anonymizer.media.video import iter_frames

        self.close()
        self.frames = iter_frames(self.path, self.limits)
        self.next_index = 0

    def close(self) -> None:
        close = getattr(self.frames, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # evicted while another request decodes from it: it ends there
                pass


class FrameCache:
    """JPEG frames of video files by index, with a few decoders kept open (LRU)."""

    def __init__(self, size: int = OPEN_DECODERS) -> None:
        self.size = size
        self._cursors: OrderedDict[tuple[str, int, int], _Cursor] = OrderedDict()
        self._lock = threading.Lock()

    def _cursor(self, path: Path, limits: LimitsSpec, index: int) -> _Cursor:
        st = path.stat()
        # A new round's copy replaces the file: its inode or mtime differs, so does the key.
        key = (str(path), st.st_ino, st.st_mtime_ns)
        with self._lock:
            cursor = self._cursors.get(key)
            if cursor is None:
                cursor = self._cursors[key] = _Cursor(path, limits)
            self._cursors.move_to_end(key)
            while len(self._cursors) > self.size:
                _, old = self._cursors.popitem(last=False)
                old.close()
            return cursor

    def video_frame(self, path: Path, limits: LimitsSpec, index: int) -> bytes | None:
        """The frame ``index`` of the video at ``path`` as JPEG; None past its last frame."""
        cursor = self._cursor(path, limits, index)
        with cursor.lock:
            if cursor.next_index > index:  # another request moved it past meanwhile
                cursor.reset()
            for decoded in cursor.frames:
                cursor.next_index = decoded.index + 1
                if decoded.index == index:
                    return encode_jpeg(decoded.rgb())
            return None

    def close(self) -> None:
        with self._lock:
            for cursor in self._cursors.values():
                cursor.close()
            self._cursors.clear()


def photo_jpeg(path: Path, limits: LimitsSpec) -> bytes:
    """A photo, upright (EXIF orientation applied: the sidecar's coordinates), as JPEG."""
    from anonymizer.media.image import read_photo

    return encode_jpeg(read_photo(path, limits).rgb)
