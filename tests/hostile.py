"""Generators for hostile and broken inputs, shared by the sniff, CLI and daemon tests.

Every generator writes real bytes: small videos come from PyAV's real encoders, broken ones are
real files cut or patched at the byte level, the PNG bomb is written chunk by chunk with zlib.
Nothing here is a mock of the product; these are the files a hostile or careless camera, VMS or
user could drop into a watched folder.

Generators take the folder to write into (and, where the attack needs one, a folder *outside* the
watched one) and return the path they created. ``REJECTED`` lists every input the product must
refuse with a reason; ``ACCEPTED`` the ones it must process although they look odd.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from media_factory import make_gradient_video

SIZE_WH = (160, 120)


# --------------------------------------------------------------------------- valid media


def make_jpeg(path: Path, size_wh: tuple[int, int] = SIZE_WH, *, variant: int = 0) -> Path:
    """Write a small real JPEG photo (a gradient; ``variant`` shifts it) and return its path."""
    import cv2

    width, height = size_wh
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = variant % 256
    image[:, :, 1] = np.arange(width, dtype=np.uint8)[None, :]
    image[:, :, 2] = np.arange(height, dtype=np.uint8)[:, None]
    ok, data = cv2.imencode(".jpg", image)
    assert ok, "cv2 could not encode a JPEG"
    path.write_bytes(data.tobytes())
    return path


def count_frames(path: Path) -> int:
    """Decode every video frame of a file with PyAV and return how many there were."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# --------------------------------------------------------------------------- broken media


def truncate(path: Path, fraction: float = 0.5) -> Path:
    """Cut a file to ``fraction`` of its bytes in place (a copy or a write that stopped); return it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def zero_byte(folder: Path) -> Path:
    """An empty file named like a video (a camera that crashed before writing anything)."""
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path


def truncated_mp4(folder: Path) -> Path:
    """An MP4 written with its moov atom at the end, cut in half: the index is gone."""
    path = make_gradient_video(folder / "cut_moov_at_end.mp4")
    data = path.read_bytes()
    # PyAV writes mdat first and moov last unless asked for faststart; the cut must lose moov.
    assert data.find(b"moov") > data.find(b"mdat") > 0, "expected moov after mdat"
    return truncate(path)


def truncated_avi(folder: Path) -> Path:
    """An AVI cut in half: it opens and decodes about half its frames without any error."""
    return truncate(make_gradient_video(folder / "cut.avi", codec="mpeg4", audio="pcm_s16le"))


def truncated_mkv(folder: Path) -> Path:
    """A Matroska file cut in half: its header still declares the full duration."""
    return truncate(make_gradient_video(folder / "cut.mkv"))


def random_bytes_mp4(folder: Path, seed: int = 5) -> Path:
    """64 KiB of random bytes named .mp4 (seeded so a failure can be reproduced)."""
    path = folder / "noise.mp4"
    path.write_bytes(random.Random(seed).randbytes(64 * 1024))
    return path


def wrong_extension_video(folder: Path) -> Path:
    """A valid MP4 (H.264 + AAC) named .avi: content, not name, decides (it must be accepted)."""
    return make_gradient_video(folder / "really_mp4.avi", container="mp4")


def wrong_extension_photo_name(folder: Path) -> Path:
    """A valid Matroska video named .jpg: accepted as a video."""
    return make_gradient_video(folder / "really_mkv.jpg", container="matroska")


def hls_playlist(folder: Path, outside: Path) -> Path:
    """An HLS playlist whose segments are a real video outside the folder (absolute and ../)."""
    target = make_gradient_video(outside / "secret_outside.mp4")
    relative = os.path.relpath(target, folder)
    path = folder / "stream.m3u8"
    path.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n"
        f"#EXTINF:2.0,\n{target}\n#EXTINF:2.0,\n{relative}\n#EXT-X-ENDLIST\n"
    )
    return path


def hls_playlist_named_mp4(folder: Path, outside: Path) -> Path:
    """The same HLS playlist, renamed .mp4 so that an extension check alone would let it in."""
    path = hls_playlist(folder, outside)
    return path.rename(folder / "stream_playlist.mp4")


def ffconcat_playlist(folder: Path, outside: Path) -> Path:
    """An ffconcat script pointing at a real video outside the folder, named .mp4."""
    target = make_gradient_video(outside / "secret_concat.mp4")
    path = folder / "concat.mp4"
    path.write_text(f"ffconcat version 1.0\nfile '{target}'\nfile '{os.path.relpath(target, folder)}'\n")
    return path


def sdp_file(folder: Path) -> Path:
    """An SDP description that would make FFmpeg listen for RTP on the network."""
    path = folder / "camera.sdp"
    path.write_text("v=0\no=- 0 0 IN IP4 127.0.0.1\ns=cam\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\n")
    return path


def png_bomb(folder: Path, side: int = 30_000) -> Path:
    """A ~110 KB PNG declaring a side x side 1-bit canvas (900 MP, gigabytes once decoded).

    Written with zlib row by row, so that building the bomb does not itself need the memory.
    """
    path = folder / "bomb.png"
    row = b"\x00" + b"\x00" * ((side + 7) // 8)  # filter byte 0 + packed 1-bit pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def jpeg_header_bomb(folder: Path, side: int = 65_000) -> Path:
    """A JPEG whose frame header declares side x side pixels, followed by almost no data."""
    path = folder / "bomb.jpg"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, side, side, 1) + b"\x01\x11\x00"
    path.write_bytes(b"\xff\xd8" + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + sof + b"\xff\xd9")
    return path


def _patch_avi(path: Path, *, size_wh: tuple[int, int] | None = None, frames: int | None = None) -> Path:
    # AVI headers are fixed-size little-endian structs, so fields can be rewritten in place.
    data = bytearray(path.read_bytes())
    avih = data.find(b"avih") + 8  # MainAVIHeader after its 8-byte chunk header
    strh = data.find(b"strh") + 8  # first stream header: the video stream
    strf = data.find(b"strf") + 8  # BITMAPINFOHEADER
    if size_wh is not None:
        struct.pack_into("<II", data, avih + 32, *size_wh)  # dwWidth, dwHeight
        struct.pack_into("<ii", data, strf + 4, *size_wh)  # biWidth, biHeight
    if frames is not None:
        struct.pack_into("<I", data, avih + 16, frames)  # dwTotalFrames
        struct.pack_into("<I", data, strh + 32, frames)  # dwLength
    path.write_bytes(bytes(data))
    return path


def huge_dimensions_video(folder: Path) -> Path:
    """An uncompressed AVI whose headers declare 100000 x 100000 pixels per frame."""
    path = make_gradient_video(folder / "huge.avi", codec="rawvideo", frames=3, audio=None)
    return _patch_avi(path, size_wh=(100_000, 100_000))


def large_dimensions_video(folder: Path) -> Path:
    """An uncompressed AVI declaring 12000 x 12000 (within FFmpeg's limits, over 40 MP)."""
    path = make_gradient_video(folder / "large.avi", codec="rawvideo", frames=3, audio=None)
    return _patch_avi(path, size_wh=(12_000, 12_000))


def endless_declared_video(folder: Path) -> Path:
    """An AVI whose headers declare ~4.29 billion frames (about 9 years at 15 fps)."""
    path = make_gradient_video(folder / "endless.avi", codec="mpeg4", audio=None)
    return _patch_avi(path, frames=0xFFFF_FFF0)


def fifo_stream(folder: Path) -> Path:
    """A named pipe called .ts: reading it would block or never end."""
    path = folder / "live.ts"
    os.mkfifo(path)
    return path


def symlink_outside(folder: Path, outside: Path) -> Path:
    """A symlink in the folder to a real photo outside it."""
    target = make_jpeg(outside / "outside_photo.jpg")
    path = folder / "link.jpg"
    path.symlink_to(target)
    return path


def symlink_to_device(folder: Path) -> Path:
    """A symlink named .mp4 to /dev/zero: an endless stream of zeros."""
    path = folder / "zeros.mp4"
    path.symlink_to("/dev/zero")
    return path


# --------------------------------------------------------------------------- hostile names

# Names a VMS export, a Windows share or an attacker can produce. bytes names are passed through
# os.fsdecode so that invalid UTF-8 survives as surrogate escapes, as it does on a real mount.
HOSTILE_NAMES: dict[str, bytes] = {
    "dots_only": b"..jpg",
    "dot_dot_inside": b"a..b..jpg",
    "dot_dot_prefix": b"...mp4",
    "newline": b"line1\nline2.jpg",
    "carriage_return_json": b'x"\r\n{"evil": 1}.jpg',
    "invalid_utf8": b"caf\xe9\xff\xfe.jpg",
}


def hostile_named(folder: Path, key: str) -> Path:
    """Write a valid photo (or video for .mp4) under one of ``HOSTILE_NAMES``; return its path.

    Each name gets distinct content, so that none is skipped as a duplicate of another.
    """
    name = HOSTILE_NAMES[key]
    path = Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))
    variant = 40 * (list(HOSTILE_NAMES).index(key) + 1)
    if name.endswith(b".mp4"):
        return make_gradient_video(path, frames=10 + variant // 40)
    return make_jpeg(path, variant=variant)


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Case:
    """One hostile input: how to build it and what the refusal reason should mention."""

    build: Callable[[Path, Path], Path]  # (watched folder, outside folder) -> input path
    reason_words: tuple[str, ...] = ()  # any of these (lower case) must appear in the reason


def _inside(fn: Callable[[Path], Path]) -> Callable[[Path, Path], Path]:
    return lambda folder, outside: fn(folder)


REJECTED: dict[str, Case] = {
    "zero_byte": Case(_inside(zero_byte), ("empty", "0 bytes")),
    "truncated_mp4_moov_at_end": Case(_inside(truncated_mp4), ("truncat", "corrupt", "invalid", "moov")),
    "truncated_avi": Case(_inside(truncated_avi), ("truncat", "frames", "incomplete", "corrupt")),
    "truncated_mkv": Case(_inside(truncated_mkv), ("truncat", "frames", "incomplete", "corrupt", "duration")),
    "random_bytes_mp4": Case(_inside(random_bytes_mp4), ("unrecognised", "not one of")),
    "hls_playlist": Case(hls_playlist, ("playlist",)),
    "hls_playlist_named_mp4": Case(hls_playlist_named_mp4, ("playlist",)),
    "ffconcat_playlist": Case(ffconcat_playlist, ("playlist", "ffconcat")),
    "sdp_file": Case(_inside(sdp_file), ("sdp", "network")),
    "png_bomb": Case(_inside(png_bomb), ("max_pixels", "mp")),
    "jpeg_header_bomb": Case(_inside(jpeg_header_bomb), ("max_pixels", "mp")),
    "huge_dimensions_video": Case(_inside(huge_dimensions_video), ("pixel", "dimension", "size", "width", "mp")),
    "large_dimensions_video": Case(_inside(large_dimensions_video), ("pixel", "dimension", "mp", "limit")),
    "endless_declared_video": Case(_inside(endless_declared_video), ("duration", "frames", "limit")),
    "fifo_stream": Case(_inside(fifo_stream), ("fifo", "regular file")),
    "symlink_outside": Case(symlink_outside, ("symbolic link",)),
    "symlink_to_device": Case(_inside(symlink_to_device), ("symbolic link",)),
}

ACCEPTED: dict[str, Case] = {
    "wrong_extension_video": Case(_inside(wrong_extension_video)),
    "wrong_extension_photo_name": Case(_inside(wrong_extension_photo_name)),
}
