"""Ingest guard: decide from the first bytes whether a file may be decoded at all.

FFmpeg (inside PyAV and OpenCV) will happily open playlists, concat scripts, SDP files and dozens
of exotic demuxers, and a playlist can make it read files outside the watched folder. So nothing
reaches a decoder unless its content matches one entry of a short magic-byte allow-list:

* photos: JPEG, PNG, WebP, TIFF, BMP and HEIC (HEVC-coded HEIF stills, as phones write them);
* videos: MP4/MOV (``ftyp``), Matroska/WebM (EBML), AVI, MPEG-TS, MPEG-PS, FLV, ASF/WMV and GIF
  (an animated GIF is a short video here; PyAV decodes it).

The extension is ignored when deciding: a valid MP4 named ``clip.avi`` is accepted as MP4, and
``Sniffed.suffix`` tells the caller which suffix the output should carry. Text (HLS ``.m3u8``,
``ffconcat``, SDP, HTML), empty files and random bytes are refused whatever they are called.

The guard also refuses anything that is not a plain file (FIFOs and devices never end) and, by
default, symbolic links, which could point outside the folder the operator meant to expose.

Reasons are one line and never contain the file name: the caller decides whether names may be
logged (``profile.privacy.log_file_names``).

Example:
    >>> kind = sniff_kind(Path("clip.mp4"), max_file_bytes=profile.limits.max_file_bytes)
    >>> if kind == "image":
    ...     width, height = check_image_header(Path("clip.mp4"), profile.limits.max_pixels)
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from anonymizer.errors import LimitExceededError, MediaError, UnsupportedMediaError

Kind = Literal["image", "video"]

# Bytes read to decide the format; MPEG-TS needs a few 188/192-byte packets.
_HEAD_BYTES = 8 * 192 + 4

# format -> (kind, accepted suffixes; the first one is what an output of that format is called)
FORMATS: dict[str, tuple[Kind, tuple[str, ...]]] = {
    "jpeg": ("image", (".jpg", ".jpeg", ".jpe", ".jfif")),
    "png": ("image", (".png",)),
    "webp": ("image", (".webp",)),
    "tiff": ("image", (".tif", ".tiff")),
    "bmp": ("image", (".bmp", ".dib")),
    "heif": ("image", (".heic", ".heif", ".hif")),
    "mp4": ("video", (".mp4", ".m4v", ".3gp", ".3g2")),
    "mov": ("video", (".mov", ".qt")),
    "matroska": ("video", (".mkv",)),
    "webm": ("video", (".webm",)),
    "avi": ("video", (".avi",)),
    "mpegts": ("video", (".ts", ".mts", ".m2ts")),
    "mpegps": ("video", (".mpg", ".mpeg", ".vob")),
    "flv": ("video", (".flv",)),
    "asf": ("video", (".wmv", ".asf")),
    "gif": ("video", (".gif",)),
}

# Also suffixes of media that is refused (so that a file called so is reported, never skipped).
_MEDIA_SUFFIXES = frozenset(
    [s for _, suffixes in FORMATS.values() for s in suffixes]
    + [".avif", ".heics", ".jxl", ".m3u", ".m3u8", ".sdp", ".ffconcat", ".mxf", ".ogv", ".rm", ".rmvb", ".dav", ".h264", ".h265", ".264", ".265"]
)

_ACCEPTED = "JPEG, PNG, WebP, TIFF, BMP, HEIC photos; MP4/MOV, MKV/WebM, AVI, MPEG-TS/PS, FLV, WMV, GIF videos"

_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
# ftyp brands of HEIF/AVIF/JPEG-XL images: same box structure as MP4, but not videos.
_STILL_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis", b"jxl "}
# HEVC-coded HEIF stills (what phones write), decoded by pillow-heif. HEIF image sequences (hevc,
# hevx, msf1), AVIF and JPEG XL stay refused: pillow-heif's wheel decodes none of them.
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis"}
# Top-level atoms that may open a classic QuickTime file written without an ftyp box.
_QT_FIRST_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


class NotMediaError(UnsupportedMediaError):
    """The content is plainly no photo or video (text, markup, audio, unknown bytes).

    Playlists, concat scripts and stream descriptions are not this: they ask a decoder to open
    something else, so a caller that skips stray notes in a folder still reports them as refused.
    """


# Refusals of content that names other media or a network stream (see _refusal_reason).
_STREAM_REASONS = ("HLS/M3U playlist", "ffconcat script", "SDP session description")


def looks_like_media_name(path: Path) -> bool:
    """Return True when the file's suffix is one a photo or video is called by (any accepted format)."""
    return path.suffix.lower() in _MEDIA_SUFFIXES


@dataclass(frozen=True)
class Sniffed:
    """What the content of a file is, whatever its name says.

    Attributes:
        kind: "image" or "video".
        format: short format name, a key of ``FORMATS`` (e.g. "mp4", "jpeg").
        suffix: the suffix an output of this format should carry (e.g. ".mp4").
        size_bytes: the file's size when it was sniffed.
    """

    kind: Kind
    format: str
    suffix: str
    size_bytes: int


def expected_suffixes(kind_or_format: str) -> tuple[str, ...]:
    """Given a format name ("mp4") or a kind ("video"), return the lower-case suffixes that fit it.

    Raise KeyError for an unknown name.
    """
    if kind_or_format in FORMATS:
        return FORMATS[kind_or_format][1]
    if kind_or_format in ("image", "video"):
        return tuple(s for kind, suffixes in FORMATS.values() if kind == kind_or_format for s in suffixes)
    raise KeyError(f"unknown kind or format {kind_or_format!r}; expected image, video or one of {sorted(FORMATS)}")


def sniff_kind(path: Path, *, max_file_bytes: int | None = None, follow_symlinks: bool = False) -> Kind:
    """Given a file, return "image" or "video" from its content.

    Raise UnsupportedMediaError (one-line reason, without the file name) for anything off the
    allow-list, LimitExceededError when the file is larger than ``max_file_bytes``, and OSError
    when it cannot be opened at all.
    """
    return sniff(path, max_file_bytes=max_file_bytes, follow_symlinks=follow_symlinks).kind


def sniff(path: Path, *, max_file_bytes: int | None = None, follow_symlinks: bool = False) -> Sniffed:
    """Like ``sniff_kind`` but also return the format, the output suffix and the size."""
    head, size = _read_head(Path(path), follow_symlinks=follow_symlinks)
    if max_file_bytes is not None and size > max_file_bytes:
        raise LimitExceededError(f"file is {size} bytes, over limits.max_file_bytes ({max_file_bytes})")
    fmt = sniff_bytes(head)
    kind, suffixes = FORMATS[fmt]
    return Sniffed(kind=kind, format=fmt, suffix=suffixes[0], size_bytes=size)


def _read_head(path: Path, *, follow_symlinks: bool) -> tuple[bytes, int]:
    # O_NOFOLLOW makes the symlink check atomic with the open (no check-then-open race);
    # O_NONBLOCK keeps opening a FIFO from hanging until a writer appears.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise UnsupportedMediaError("input is a symbolic link; links are never followed") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsupportedMediaError(f"input is a {_file_type(st.st_mode)}, not a regular file")
        if st.st_size == 0:
            raise UnsupportedMediaError("file is empty (0 bytes)")
        head = os.pread(fd, _HEAD_BYTES, 0)
    finally:
        os.close(fd)
    if not head:
        raise UnsupportedMediaError("file is empty (0 bytes)")
    return head, st.st_size


def _file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


def sniff_bytes(head: bytes) -> str:
    """Given the first bytes of a file (at least 1,540 where available), return its format name.

    Raise UnsupportedMediaError with a one-line reason when the bytes match no allowed format.
    """
    if not head:
        raise UnsupportedMediaError("file is empty (0 bytes)")
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if _is_bmp(head):
        return "bmp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if _is_heic(head):
            return "heif"
        if brand in _STILL_BRANDS:
            raise UnsupportedMediaError(f"HEIF/AVIF still image (brand {_printable(brand)}) is not supported")
        return "mov" if brand == b"qt  " else "mp4"
    if head[4:8] in _QT_FIRST_ATOMS and struct.unpack(">I", head[:4])[0] >= 8:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # The DocType element (0x4282) sits inside the short EBML header.
        return "webm" if b"\x42\x82\x84webm" in head[:64] else "matroska"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if _is_transport_stream(head):
        return "mpegts"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpegps"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(_ASF_GUID):
        return "asf"
    reason = _refusal_reason(head)
    if reason.startswith(_STREAM_REASONS):
        raise UnsupportedMediaError(reason)
    raise NotMediaError(reason)


def _is_heic(head: bytes) -> bool:
    # ftyp: size(4) 'ftyp' major_brand(4) minor_version(4) compatible_brands(4 each).
    major = head[8:12]
    size = min(struct.unpack(">I", head[:4])[0], len(head))
    compatible = {head[o : o + 4] for o in range(16, size - 3, 4)}
    if major in _HEIC_BRANDS:
        return True
    # 'mif1' (generic HEIF) as the major brand: HEVC stills list a HEIC brand among the compatible
    # ones; AVIF lists avif.
    return major == b"mif1" and bool(compatible & _HEIC_BRANDS) and not compatible & {b"avif", b"avis"}


def _is_bmp(head: bytes) -> bool:
    # "BM" alone matches plenty of text; also require zero reserved words and a known DIB size.
    if len(head) < 26 or head[:2] != b"BM":
        return False
    reserved, dib_size = struct.unpack("<I4xI", head[6:18])
    return reserved == 0 and dib_size in (12, 16, 40, 52, 56, 64, 108, 124)


def _is_transport_stream(head: bytes) -> bool:
    # One 0x47 byte is a 1-in-256 coincidence; a sync byte every packet for several packets is not.
    for start, step in ((0, 188), (4, 192)):
        offsets = range(start, len(head), step)
        if len(offsets) >= 2 and all(head[o] == 0x47 for o in list(offsets)[:8]):
            return True
    return False


def _refusal_reason(head: bytes) -> str:
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    lowered = stripped[:64].lower()
    if stripped.startswith(b"#EXTM3U") or lowered.startswith(b"#ext"):
        return "HLS/M3U playlist: playlists are never opened or followed"
    if lowered.startswith((b"ffconcat", b"file ", b"file\t")):
        return "ffconcat script: playlists are never opened or followed"
    if lowered.startswith(b"v=0"):
        return "SDP session description: network streams are not accepted"
    if lowered.startswith(b"<"):
        return "markup (HTML/XML/SVG) is not a photo or video"
    if head[:4] == b"RIFF":
        return f"RIFF container of type {_printable(head[8:12])} is not a photo or video"
    if head.startswith((b"ID3", b"fLaC", b"OggS", b"\xff\xfb", b"\xff\xf3")):
        return "audio or Ogg container is not on the allow-list of photo/video formats"
    if _looks_like_text(head):
        return "text file, not a photo or video"
    return f"unrecognised content, not one of the accepted formats ({_ACCEPTED})"


def _looks_like_text(head: bytes) -> bool:
    sample = head[:512]
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
    return printable >= 0.95 * len(sample)


def _printable(raw: bytes) -> str:
    return repr("".join(chr(b) if 32 <= b < 127 else "?" for b in raw))


# --------------------------------------------------------------------------- image headers


def check_image_header(path: Path, max_pixels: int) -> tuple[int, int]:
    """Given a photo (or GIF), return (width, height) read from its header, without decoding it.

    A 100 KB PNG can declare a 30000x30000 canvas and take gigabytes to decode, so the canvas is
    checked against ``max_pixels`` before any decoder sees the file. For TIFF every page's size
    is checked, since decoders may pick any of them.

    Raise LimitExceededError when width x height exceeds ``max_pixels``, MediaError when the
    header is truncated or corrupt, UnsupportedMediaError when the file is not a photo/GIF.
    """
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
        fmt = sniff_bytes(head)
        readers = {
            "png": _png_size,
            "jpeg": _jpeg_size,
            "webp": _webp_size,
            "tiff": _tiff_size,
            "bmp": _bmp_size,
            "gif": _gif_size,
            "heif": _heif_size,
        }
        if fmt not in readers:
            raise UnsupportedMediaError(f"{fmt} is a video container, not a photo")
        try:
            sizes = readers[fmt](fh)
        except (struct.error, IndexError, ValueError) as exc:
            raise MediaError(f"{fmt.upper()} header is truncated or corrupt") from exc
    for width, height in sizes:
        if width <= 0 or height <= 0:
            raise MediaError(f"{fmt.upper()} header declares an empty canvas ({width}x{height})")
        if width * height > max_pixels:
            raise LimitExceededError(
                f"{fmt.upper()} declares {width}x{height} = {width * height / 1e6:.1f} MP, "
                f"over limits.max_pixels ({max_pixels / 1e6:.1f} MP)"
            )
    return sizes[0]


def _read_at(fh: BinaryIO, offset: int, size: int) -> bytes:
    fh.seek(offset)
    data = fh.read(size)
    if len(data) != size:
        raise ValueError("short read")
    return data


def _png_size(fh: BinaryIO) -> list[tuple[int, int]]:
    # IHDR must be the first chunk: length(4) 'IHDR'(4) width(4) height(4).
    chunk = _read_at(fh, 8, 16)
    if chunk[4:8] != b"IHDR":
        raise ValueError("IHDR is not the first chunk")
    return [struct.unpack(">II", chunk[8:16])]


# SOF markers carrying frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(fh: BinaryIO) -> list[tuple[int, int]]:
    offset = 2
    for _ in range(100_000):  # every segment advances by >= 2 bytes; the bound only stops pathologies
        fh.seek(offset)
        byte = fh.read(1)
        if byte != b"\xff":
            raise ValueError("expected a marker")
        marker = 0xFF
        while marker == 0xFF:  # fill bytes may precede a marker
            nxt = fh.read(1)
            if not nxt:
                raise ValueError("truncated")
            marker = nxt[0]
        offset = fh.tell()
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone markers, no length
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            raise ValueError("no frame header before scan data")
        (length,) = struct.unpack(">H", _read_at(fh, offset, 2))
        if length < 2:
            raise ValueError("bad segment length")
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", _read_at(fh, offset + 3, 4))
            if height == 0:
                # Height deferred to a DNL marker after the scan: cannot be bounded up front.
                raise ValueError("height defined by DNL")
            return [(width, height)]
        offset += length
    raise ValueError("too many segments")


def _webp_size(fh: BinaryIO) -> list[tuple[int, int]]:
    chunk = _read_at(fh, 12, 4)
    if chunk == b"VP8 ":
        data = _read_at(fh, 20, 10)
        if data[3:6] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        width, height = struct.unpack("<HH", data[6:10])
        return [(width & 0x3FFF, height & 0x3FFF)]
    if chunk == b"VP8L":
        data = _read_at(fh, 20, 5)
        if data[0] != 0x2F:
            raise ValueError("bad VP8L signature")
        bits = int.from_bytes(data[1:5], "little")
        return [((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)]
    if chunk == b"VP8X":
        data = _read_at(fh, 24, 6)
        return [(int.from_bytes(data[0:3], "little") + 1, int.from_bytes(data[3:6], "little") + 1)]
    raise ValueError("unknown WebP chunk")


def _tiff_size(fh: BinaryIO) -> list[tuple[int, int]]:
    order = "<" if _read_at(fh, 0, 2) == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", _read_at(fh, 4, 4))
    sizes: list[tuple[int, int]] = []
    seen: set[int] = set()
    while ifd and ifd not in seen and len(seen) < 256:
        seen.add(ifd)
        (count,) = struct.unpack(order + "H", _read_at(fh, ifd, 2))
        entries = _read_at(fh, ifd + 2, 12 * count + 4)
        found: dict[int, int] = {}
        for i in range(count):
            tag, typ, n = struct.unpack(order + "HHI", entries[12 * i : 12 * i + 8])
            if tag in (256, 257) and n == 1:
                # SHORT (3) is left-aligned in the 4-byte value field; LONG (4) fills it.
                fmt_ = order + ("H" if typ == 3 else "I")
                (found[tag],) = struct.unpack_from(fmt_, entries, 12 * i + 8)
        if 256 not in found or 257 not in found:
            raise ValueError("IFD without ImageWidth/ImageLength")
        sizes.append((found[256], found[257]))
        (ifd,) = struct.unpack(order + "I", entries[12 * count :])
    if not sizes:
        raise ValueError("no IFD")
    return sizes


def _bmp_size(fh: BinaryIO) -> list[tuple[int, int]]:
    (dib_size,) = struct.unpack("<I", _read_at(fh, 14, 4))
    if dib_size == 12:
        return [struct.unpack("<HH", _read_at(fh, 18, 4))]
    width, height = struct.unpack("<ii", _read_at(fh, 18, 8))
    return [(width, abs(height))]  # negative height means top-down rows


def _gif_size(fh: BinaryIO) -> list[tuple[int, int]]:
    return [struct.unpack("<HH", _read_at(fh, 6, 4))]


def _boxes(fh: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, payload start, payload end) of the ISO-BMFF boxes between ``start`` and ``end``."""
    offset = start
    for _ in range(10_000):  # a bound on hostile files; real HEIC files have a few dozen boxes
        if offset + 8 > end:
            return
        size, kind = struct.unpack(">I4s", _read_at(fh, offset, 8))
        header = 8
        if size == 1:  # 64-bit size follows the type
            (size,) = struct.unpack(">Q", _read_at(fh, offset + 8, 8))
            header = 16
        elif size == 0:  # the box runs to the end of its parent
            size = end - offset
        if size < header or offset + size > end:
            raise ValueError("box overruns its parent")
        yield kind, offset + header, offset + size
        offset += size
    raise ValueError("too many boxes")


def _heif_size(fh: BinaryIO) -> list[tuple[int, int]]:
    # Every image of a HEIF file (the primary one, a grid's tiles, thumbnails, depth maps) has an
    # 'ispe' property, meta > iprp > ipco > ispe, giving its size; each one is checked, as TIFF pages
    # are. A grid's own ispe is its full canvas, so a tiled 48 MP photo is bounded before decoding.
    end = fh.seek(0, os.SEEK_END)
    sizes: list[tuple[int, int]] = []
    for kind, start, stop in _boxes(fh, 0, end):
        if kind != b"meta":
            continue
        for kind2, start2, stop2 in _boxes(fh, start + 4, stop):  # meta is a full box: skip version+flags
            if kind2 != b"iprp":
                continue
            for kind3, start3, stop3 in _boxes(fh, start2, stop2):
                if kind3 != b"ipco":
                    continue
                for kind4, start4, _stop4 in _boxes(fh, start3, stop3):
                    if kind4 == b"ispe":
                        sizes.append(struct.unpack(">II", _read_at(fh, start4 + 4, 8)))
    if not sizes:
        raise ValueError("no image size (ispe) in the HEIF header")
    return sizes
