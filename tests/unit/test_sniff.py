"""The ingest guard: content decides, the allow-list is short, reasons never name the file."""

from __future__ import annotations

import os
import struct
import threading
import time
from pathlib import Path

import cv2
import hostile
import numpy as np
import pytest
from PIL import Image

import anonymizer.media.sniff as module
from anonymizer.errors import LimitExceededError, MediaError, UnsupportedMediaError

# A distinctive token in every file name, so that a reason quoting the name is caught.
SECRET = "Zx9SecretName"


def _image(path: Path, width: int = 64, height: int = 48) -> Path:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    assert cv2.imwrite(str(path), image), f"cv2 could not write {path.suffix}"
    return path


VIDEO_VARIANTS = {
    # format expected from sniff: (container, codec, audio, suffix written)
    "mp4": ("mp4", "libx264", "aac", ".mp4"),
    "mov": ("mov", "libx264", "aac", ".mov"),
    "matroska": ("matroska", "libx264", "aac", ".mkv"),
    "webm": ("webm", "libvpx-vp9", None, ".webm"),
    "avi": ("avi", "mpeg4", "pcm_s16le", ".avi"),
    "mpegts": ("mpegts", "libx264", "aac", ".ts"),
    "mpegps": ("mpeg", "mpeg2video", None, ".mpg"),
    "flv": ("flv", "flv", None, ".flv"),
    "asf": ("asf", "wmv2", None, ".wmv"),
    "gif": ("gif", "gif", None, ".gif"),
}


@pytest.mark.parametrize("fmt", sorted(VIDEO_VARIANTS))
def test_sniff_recognises_each_allowed_video_container_written_by_a_real_muxer(tmp_path: Path, fmt: str) -> None:
    container, codec, audio, suffix = VIDEO_VARIANTS[fmt]
    path = tmp_path / f"{SECRET}{suffix}"
    if codec == "gif":
        frames = [Image.new("RGB", (32, 24), (i * 40, 0, 0)) for i in range(3)]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    else:
        hostile.make_gradient_video(path, container=container, codec=codec, audio=audio, frames=6)

    result = module.sniff(path)

    assert (result.kind, result.format) == ("video", fmt)
    assert result.suffix == suffix or suffix in module.expected_suffixes(fmt)
    assert result.size_bytes == path.stat().st_size


@pytest.mark.parametrize(
    ("suffix", "fmt"), [(".jpg", "jpeg"), (".png", "png"), (".webp", "webp"), (".tif", "tiff"), (".bmp", "bmp")]
)
def test_sniff_recognises_each_allowed_photo_format_and_reads_its_size_from_the_header(
    tmp_path: Path, suffix: str, fmt: str
) -> None:
    path = _image(tmp_path / f"{SECRET}{suffix}", width=70, height=45)

    assert module.sniff_kind(path) == "image"
    assert module.sniff(path).format == fmt
    assert module.check_image_header(path, max_pixels=10_000) == (70, 45)


@pytest.mark.parametrize("options", [{"lossless": True}, {"lossless": False, "exif": b"Exif\x00\x00MM\x00*"}])
def test_check_image_header_reads_lossless_and_extended_webp(tmp_path: Path, options: dict) -> None:
    path = tmp_path / "p.webp"
    Image.new("RGB", (321, 123), (10, 20, 30)).save(path, **options)

    assert module.check_image_header(path, max_pixels=10**6) == (321, 123)


def test_check_image_header_reads_gif_big_endian_tiff_and_top_down_bmp(tmp_path: Path) -> None:
    Image.new("RGB", (33, 22)).save(tmp_path / "a.gif")
    tiff = tmp_path / "b.tif"
    Image.new("RGB", (44, 11)).save(tiff)
    big_endian = tiff.read_bytes()
    bmp = _image(tmp_path / "c.bmp", width=20, height=10)
    data = bytearray(bmp.read_bytes())
    struct.pack_into("<i", data, 22, -10)  # negative height: rows stored top-down
    bmp.write_bytes(bytes(data))

    assert module.check_image_header(tmp_path / "a.gif", 10**6) == (33, 22)
    assert module.check_image_header(tiff, 10**6) == (44, 11)
    assert big_endian[:2] in (b"II", b"MM")
    assert module.check_image_header(bmp, 10**6) == (20, 10)


def test_check_image_header_checks_every_page_of_a_multi_page_tiff(tmp_path: Path) -> None:
    path = tmp_path / "pages.tif"
    small, big = Image.new("L", (10, 10)), Image.new("L", (400, 300))
    small.save(path, save_all=True, append_images=[big])

    with pytest.raises(LimitExceededError, match="400x300"):
        module.check_image_header(path, max_pixels=1000)


def test_png_bomb_is_refused_from_its_header_in_milliseconds(tmp_path: Path) -> None:
    path = hostile.png_bomb(tmp_path)
    assert path.stat().st_size < 300_000, "the bomb should be a small file"

    started = time.perf_counter()
    with pytest.raises(LimitExceededError) as info:
        module.check_image_header(path, max_pixels=40_000_000)
    elapsed = time.perf_counter() - started

    assert "30000x30000" in str(info.value) and "max_pixels" in str(info.value)
    assert elapsed < 0.5
    assert module.sniff_kind(path) == "image"  # it is a PNG; the size check is what stops it


def test_jpeg_declaring_65000_squared_pixels_is_refused_before_decoding(tmp_path: Path) -> None:
    path = hostile.jpeg_header_bomb(tmp_path)

    with pytest.raises(LimitExceededError, match="65000x65000"):
        module.check_image_header(path, max_pixels=40_000_000)


def test_check_image_header_accepts_an_image_exactly_at_the_limit(tmp_path: Path) -> None:
    path = _image(tmp_path / "x.png", width=100, height=50)

    assert module.check_image_header(path, max_pixels=5000) == (100, 50)
    with pytest.raises(LimitExceededError):
        module.check_image_header(path, max_pixels=4999)


def test_jpeg_header_is_found_after_a_large_exif_segment(tmp_path: Path) -> None:
    path = tmp_path / "exif.jpg"
    base = _image(tmp_path / "base.jpg", width=90, height=30).read_bytes()
    app1 = b"\xff\xe1" + struct.pack(">H", 60_002) + b"Exif\x00\x00" + b"\x00" * 59_994
    path.write_bytes(base[:2] + app1 + base[2:])

    assert module.check_image_header(path, max_pixels=10**6) == (90, 30)


@pytest.mark.parametrize("cut", [3, 12, 20])
def test_truncated_image_headers_raise_media_error_not_a_crash(tmp_path: Path, cut: int) -> None:
    for suffix in (".png", ".jpg", ".webp", ".bmp", ".tif"):
        path = _image(tmp_path / f"t{suffix}")
        path.write_bytes(path.read_bytes()[:cut])
        with pytest.raises(MediaError):
            module.check_image_header(path, max_pixels=10**6)


def test_check_image_header_refuses_a_video(tmp_path: Path) -> None:
    path = hostile.make_gradient_video(tmp_path / "v.mp4", frames=3)

    with pytest.raises(UnsupportedMediaError, match="not a photo"):
        module.check_image_header(path, max_pixels=10**6)


TEXT_INPUTS = {
    "hls.m3u8": (b"#EXTM3U\n#EXTINF:2,\n/etc/outside.mp4\n", "playlist"),
    "hls_bom.mp4": (b"\xef\xbb\xbf#EXTM3U\n#EXTINF:2,\n../x.ts\n", "playlist"),
    "concat.mp4": (b"ffconcat version 1.0\nfile '/srv/outside.mp4'\n", "ffconcat"),
    "cam.sdp": (b"v=0\no=- 0 0 IN IP4 127.0.0.1\nm=video 5004 RTP/AVP 96\n", "sdp"),
    "page.mkv": (b"<!DOCTYPE html><html><body>hi</body></html>", "markup"),
    "notes.avi": (b"just some notes about the camera\n" * 10, "text"),
    "sound.mp4": (b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 40, "riff"),
    "photo.mp4": (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1avif", "heif/avif"),
    "generic.heic": (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif", "heif/avif"),
    "burst.heic": (b"\x00\x00\x00\x18ftyphevc\x00\x00\x00\x00msf1hevc", "heif/avif"),
    "song.mp4": (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 100, "audio"),
    "short.jpg": (b"\xff", "unrecognised"),
    "bm_text.bmp": (b"BMW is a car brand, not a bitmap header at all", "text"),
}


@pytest.mark.parametrize("name", sorted(TEXT_INPUTS))
def test_sniff_refuses_text_playlists_and_off_list_formats_whatever_the_extension(tmp_path: Path, name: str) -> None:
    content, word = TEXT_INPUTS[name]
    path = tmp_path / f"{SECRET}_{name}"
    path.write_bytes(content)

    with pytest.raises(UnsupportedMediaError) as info:
        module.sniff_kind(path)

    reason = str(info.value)
    assert word in reason.lower()
    assert SECRET not in reason and "\n" not in reason


SNIFF_LEVEL_CASES = [
    "zero_byte",
    "random_bytes_mp4",
    "hls_playlist",
    "hls_playlist_named_mp4",
    "ffconcat_playlist",
    "sdp_file",
    "fifo_stream",
    "symlink_outside",
    "symlink_to_device",
]


@pytest.mark.parametrize("key", SNIFF_LEVEL_CASES)
def test_sniff_refuses_hostile_inputs_with_a_one_line_reason_that_does_not_name_the_file(
    tmp_path: Path, key: str
) -> None:
    inside, outside = tmp_path / f"in_{SECRET}", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    path = hostile.REJECTED[key].build(inside, outside)

    # A FIFO must be refused without waiting for a writer: run the sniff in a thread with a deadline.
    outcome: list[BaseException | str] = []
    worker = threading.Thread(target=lambda: _capture(outcome, path), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "sniff blocked on the input"

    (error,) = outcome
    assert isinstance(error, UnsupportedMediaError), error
    reason = str(error)
    assert any(word in reason.lower() for word in hostile.REJECTED[key].reason_words), reason
    assert SECRET not in reason and path.name not in reason and "\n" not in reason


def _capture(outcome: list[BaseException | str], path: Path) -> None:
    try:
        outcome.append(module.sniff_kind(path))
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread to assert on
        outcome.append(exc)


def test_symlinks_are_followed_only_when_the_caller_asks(tmp_path: Path) -> None:
    target = hostile.make_jpeg(tmp_path / "real.jpg")
    link = tmp_path / "link.jpg"
    link.symlink_to(target)

    with pytest.raises(UnsupportedMediaError, match="symbolic link"):
        module.sniff_kind(link)
    assert module.sniff_kind(link, follow_symlinks=True) == "image"


def test_a_directory_named_like_a_video_is_refused(tmp_path: Path) -> None:
    (tmp_path / "folder.mp4").mkdir()

    with pytest.raises(UnsupportedMediaError, match="directory"):
        module.sniff_kind(tmp_path / "folder.mp4")


def test_a_missing_file_raises_os_error_not_media_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        module.sniff_kind(tmp_path / "gone.mp4")


def test_a_file_over_max_file_bytes_raises_limit_exceeded(tmp_path: Path) -> None:
    path = hostile.make_jpeg(tmp_path / "p.jpg")
    size = path.stat().st_size

    assert module.sniff_kind(path, max_file_bytes=size) == "image"
    with pytest.raises(LimitExceededError, match="max_file_bytes"):
        module.sniff_kind(path, max_file_bytes=size - 1)


def test_a_valid_video_with_a_wrong_extension_is_accepted_and_named_by_its_content(tmp_path: Path) -> None:
    as_avi = hostile.wrong_extension_video(tmp_path)
    as_jpg = hostile.wrong_extension_photo_name(tmp_path)

    assert (module.sniff(as_avi).kind, module.sniff(as_avi).suffix) == ("video", ".mp4")
    assert (module.sniff(as_jpg).kind, module.sniff(as_jpg).suffix) == ("video", ".mkv")


def test_mpeg_ts_needs_repeated_sync_bytes_not_a_single_0x47(tmp_path: Path) -> None:
    path = tmp_path / "g.ts"
    path.write_bytes(b"G" + os.urandom(2000).replace(b"G", b"H"))

    with pytest.raises(UnsupportedMediaError):
        module.sniff_kind(path)


def test_expected_suffixes_lists_formats_and_kinds() -> None:
    assert module.expected_suffixes("jpeg")[0] == ".jpg"
    assert ".mkv" in module.expected_suffixes("video") and ".mkv" not in module.expected_suffixes("image")
    assert set(module.expected_suffixes("image")) >= {".jpg", ".png", ".webp", ".tif", ".bmp"}
    with pytest.raises(KeyError):
        module.expected_suffixes("m3u8")


# --------------------------------------------------------------------------- HEIC (pillow-heif)


def _heic(path: Path, width: int = 128, height: int = 96, **save) -> Path:
    # x265 codes at least 64x64 and 'ispe' states the coded size: 128x96 is coded as it is.
    pytest.importorskip("pillow_heif", reason="pillow-heif is a dependency; scripts/install.sh installs it")
    import anonymizer.media.image  # noqa: F401  (registers the HEIF plugin with Pillow)

    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, :, 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    Image.fromarray(rgb).save(path, format="HEIF", **save)
    return path


@pytest.mark.parametrize("name", ["phone.heic", "misnamed.jpg"])
def test_a_heic_photo_is_an_image_whatever_its_name_and_its_size_comes_from_the_header(tmp_path: Path, name: str) -> None:
    path = _heic(tmp_path / name, 128, 96)
    found = module.sniff(path)
    assert (found.kind, found.format, found.suffix) == ("image", "heif", ".heic")
    assert module.check_image_header(path, max_pixels=128 * 96) == (128, 96)
    with pytest.raises(LimitExceededError, match=r"HEIF declares 128x96"):
        module.check_image_header(path, max_pixels=128 * 96 - 1)


def test_a_heic_declaring_a_huge_canvas_is_refused_before_any_decoder_sees_it(tmp_path: Path) -> None:
    # Rewrite the 'ispe' property of a real HEIC to 60000x60000: the file stays a few KB.
    path = _heic(tmp_path / "bomb.heic", 128, 96)
    data = bytearray(path.read_bytes())
    at = data.index(b"ispe") + 8  # type(4) version/flags(4), then width(4) height(4)
    assert struct.unpack(">II", data[at : at + 8]) == (128, 96)
    data[at : at + 8] = struct.pack(">II", 60_000, 60_000)
    path.write_bytes(bytes(data))
    started = time.monotonic()
    with pytest.raises(LimitExceededError, match="max_pixels"):
        module.check_image_header(path, max_pixels=40_000_000)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("cut", [40, 120])
def test_a_truncated_heic_header_is_a_media_error_not_a_crash(tmp_path: Path, cut: int) -> None:
    path = _heic(tmp_path / "cut.heic")
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(MediaError):
        module.check_image_header(path, max_pixels=10**6)


def test_stray_text_is_not_media_but_playlists_are_refused_as_such(tmp_path: Path) -> None:
    # The CLI skips NotMediaError files found in a folder; a playlist must never be skipped silently.
    (tmp_path / "SOURCES.md").write_text("# Sources\n\nSample media and their licences.\n")
    with pytest.raises(module.NotMediaError):
        module.sniff(tmp_path / "SOURCES.md")
    (tmp_path / "list").write_text("#EXTM3U\n#EXTINF:2,\n/etc/outside.mp4\n")
    with pytest.raises(UnsupportedMediaError) as info:
        module.sniff(tmp_path / "list")
    assert not isinstance(info.value, module.NotMediaError)
    assert module.looks_like_media_name(Path("a.HEIC")) and module.looks_like_media_name(Path("s.m3u8"))
    assert not module.looks_like_media_name(Path("SOURCES.md"))
