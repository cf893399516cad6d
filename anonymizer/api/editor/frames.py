"""Frames of a held output (or, with the source scope, of its source) as JPEG, by frame index.

Decoded server-side from the file itself: exact (the index counts decoded frames from 0, as the
sidecar's ``start_frame`` does) and independent of what the browser can play.

Stepping forward, as a reviewer and the editor's player do, continues one open decoder per file.
A jump (a click on the timeline, a step back) seeks: when the file is opened, its packets are
read once without decoding to learn every frame's presentation timestamp (in order, the frame
index's timestamp) and the keyframes'; a jump seeks to the keyframe at or before the frame and
decodes from there. Each decoded frame's timestamp is checked against that table, so an index
can never name another frame: a file whose packets do not map one to one onto decoded frames
(no timestamps, duplicates, a count that differs from the header, or a decoded frame that does
not match) is decoded from the start instead, slow but exact.
"""

from __future__ import annotations

import bisect
import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from anonymizer.config import LimitsSpec
from anonymizer.errors import LimitExceededError, MediaError
from anonymizer.media.image import read_photo
from anonymizer.media.video import OPEN_OPTIONS

JPEG_QUALITY = 90
OPEN_DECODERS = 4  # files with an open decoder at once (a few reviewers, each on one clip)
STEP_AHEAD = 48  # a jump further forward than this seeks rather than decodes every frame between


def encode_jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _open(path: Path) -> Any:
    """The file opened as the engine opens it (its format and protocol allow-lists)."""

    try:
        return av.open(str(path), mode="r", options=dict(OPEN_OPTIONS))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"cannot open as video: {type(exc).__name__}") from exc


def _frame_table(path: Path, limits: LimitsSpec) -> tuple[list[int], list[int]] | None:
    """(every frame's pts in presentation order, the keyframes' pts), read from packets without
    decoding; None when packets cannot be mapped one to one onto frames."""
    with _open(path) as container:
        stream = container.streams.video[0]
        declared = int(stream.frames or 0)
        pts: list[int] = []
        keys: list[int] = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's flush packet carries no frame
            if packet.pts is None or len(pts) >= limits.max_frames:
                return None
            pts.append(int(packet.pts))
            if packet.is_keyframe:
                keys.append(int(packet.pts))
    pts.sort()
    if not pts or not keys or len(set(pts)) != len(pts) or (declared and declared != len(pts)):
        return None
    return pts, sorted(keys)


class _Cursor:
    """An open decoder on one file, the index of the next frame it yields, and the frame table."""

    def __init__(self, path: Path, limits: LimitsSpec) -> None:
        self.path, self.limits = path, limits
        self.lock = threading.Lock()
        self.container: Any = None
        self.frames: Iterator[Any] = iter(())
        self.next_index = 0
        try:
            self.table = _frame_table(path, limits)
        except (av.error.FFmpegError, MediaError):
            self.table = None
        self.reset()

    def reset(self, seek_pts: int | None = None) -> None:
        """Open (again) at the start, or at the keyframe ``seek_pts``."""
        self.close()
        self.container = _open(self.path)
        stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        # As the engine decodes: damaged data is an error, never a concealed picture.
        stream.codec_context.options = {"err_detect": "explode"}
        if seek_pts is not None:
            self.container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
        self.frames = self.container.decode(stream)
        self.next_index = 0 if seek_pts is None else -1  # -1: known from the first frame's pts

    def close(self) -> None:
        if self.container is not None:
            try:
                self.container.close()
            except (av.error.FFmpegError, ValueError):
                pass
            self.container = None

    def _index_of(self, frame: Any) -> int:
        """The decoded frame's index; without a table, the count so far."""
        if self.table is None:
            return self.next_index
        pts = self.table[0]
        i = bisect.bisect_left(pts, frame.pts) if frame.pts is not None else len(pts)
        if i >= len(pts) or pts[i] != frame.pts or (self.next_index >= 0 and i != self.next_index):
            # Not the frame the table expects here: stop trusting it and count from the start.
            self.table = None
            raise _Untrusted
        return i

    def frame(self, index: int) -> np.ndarray | None:
        """The RGB picture of frame ``index``, or None past the last frame. Raise MediaError."""
        for attempt in range(2):
            try:
                return self._frame(index)
            except _Untrusted:
                if attempt:
                    raise MediaError("the frames of this file cannot be counted") from None
                self.reset()
        return None

    def _frame(self, index: int) -> np.ndarray | None:
        table = self.table
        if table is not None:
            if index >= len(table[0]):
                return None
            if index < self.next_index or index > self.next_index + STEP_AHEAD:
                target = table[0][index]
                self.reset(table[1][max(0, bisect.bisect_right(table[1], target) - 1)])
        elif index < self.next_index:
            self.reset()
        try:
            for frame in self.frames:
                at = self._index_of(frame)
                if at >= self.limits.max_frames:
                    raise LimitExceededError(f"more than limits.max_frames={self.limits.max_frames} frames")
                self.next_index = at + 1
                if at == index:
                    return frame.to_ndarray(format="rgb24")
                if at > index:  # a seek landed past it: only a table that lied can do that
                    self.table = None
                    raise _Untrusted
        except av.error.FFmpegError as exc:
            raise MediaError(f"decode error near frame {index}: {exc.strerror or type(exc).__name__}") from exc
        return None


class _Untrusted(Exception):
    """The frame table does not match what the decoder yields."""


class FrameCache:
    """JPEG frames of video files by index, with a few decoders kept open (LRU)."""

    def __init__(self, size: int = OPEN_DECODERS) -> None:
        self.size = size
        self._cursors: OrderedDict[tuple[str, int, int], _Cursor] = OrderedDict()
        self._lock = threading.Lock()

    def _cursor(self, path: Path, limits: LimitsSpec) -> _Cursor:
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
                with old.lock:  # not while another request decodes from it
                    old.close()
            return cursor

    def video_frame(self, path: Path, limits: LimitsSpec, index: int) -> bytes | None:
        """The frame ``index`` of the video at ``path`` as JPEG; None past its last frame."""
        cursor = self._cursor(path, limits)
        with cursor.lock:
            if cursor.container is None:  # evicted and closed meanwhile
                cursor.reset()
            rgb = cursor.frame(index)
        return None if rgb is None else encode_jpeg(rgb)

    def seeks(self, path: Path) -> bool:
        """Whether jumps in this open file seek (its frame table held), for tests."""
        with self._lock:
            return any(k[0] == str(path) and c.table is not None for k, c in self._cursors.items())

    def close(self) -> None:
        with self._lock:
            for cursor in self._cursors.values():
                cursor.close()
            self._cursors.clear()


def photo_jpeg(path: Path, limits: LimitsSpec) -> bytes:
    """A photo, upright (EXIF orientation applied: the sidecar's coordinates), as JPEG."""

    return encode_jpeg(read_photo(path, limits).rgb)
