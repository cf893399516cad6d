"""An iPhone HEIC dropped on a watched share comes out as HEIC with no GPS, EXIF, XMP or thumbnail.

The real daemon (faces only, one scale) verifies its output by re-opening it, so this also shows
that the daemon's own checks accept what pillow-heif wrote.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import daemon_helpers as dh

pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is a dependency; run scripts/install.sh")
pytestmark = pytest.mark.skipif(not dh.FACE_SAMPLES, reason="samples/faces-*.jpg are missing")


def _phone_heic(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS IFD
    heif = pillow_heif.from_pillow(Image.open(dh.FACE_SAMPLES[0]).convert("RGB"))
    heif.info["exif"] = exif.tobytes()
    heif.info["xmp"] = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description exif:GPSLatitude="48,51.48N"/></x:xmpmeta>'
    heif.save(path, thumbnails=[96])
    return path


def test_the_daemon_anonymizes_a_heic_photo_and_keeps_none_of_its_metadata(tmp_path: Path) -> None:
    profile = dh.write_fast_profile(tmp_path / "fast.yaml")
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "phones", profile)])
    inp, out = tmp_path / "phones" / "in", tmp_path / "phones" / "out"
    source = _phone_heic(tmp_path / "IMG_4711.HEIC")
    raw = source.read_bytes()
    assert b"Apple" in raw and b"xmpmeta" in raw and b"thmb" in raw  # the fixture carries them

    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        (inp / "IMG_4711.HEIC.part").write_bytes(raw)
        (inp / "IMG_4711.HEIC.part").rename(inp / "IMG_4711.HEIC")
        target = out / "IMG_4711.HEIC"
        dh.wait_for(lambda: target.exists() and dh.audit_lines(tmp_path / "audit"), 120, "the HEIC output and its audit line")
        assert daemon.stop() == 0

    written = target.read_bytes()
    assert written[4:12] == b"ftypheic"
    for token in (b"thmb", b"Exif", b"Apple", b"xmpmeta", b"GPS"):
        assert token not in written, token
    assert not pillow_heif.open_heif(target).info.get("exif")
    [line] = [a for a in dh.audit_lines(tmp_path / "audit") if a.get("outcome")]
    assert line["outcome"] == "anonymized" and line["output"]["sha256"] == dh.sha256(target)
    assert list((tmp_path / "phones" / "quarantine").iterdir()) == []
