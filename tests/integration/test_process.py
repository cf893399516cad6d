"""`anonymizer process` end to end on real media: fidelity, metadata hygiene, failures, coverage."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import av
import daemon_helpers as dh
import numpy as np
import pytest
from media_factory import FACES_PHOTO, PLATE_PHOTO, assert_faces_changed, make_video
from PIL import Image

from anonymizer.cli import main

ROOT = Path(__file__).resolve().parents[2]


def video_facts(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        rate, size = v.average_rate, (v.width, v.height)  # read while the container is open
        pts = [f.pts for f in c.decode(v)]
    with av.open(str(path)) as c:
        first = next(c.decode(video=0))
    with av.open(str(path)) as c:
        audio = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size] if c.streams.audio else []
        meta = dict(c.metadata)
        a_codec = c.streams.audio[0].codec_context.name if c.streams.audio else None
    return {"pts": pts, "rate": rate, "size": size, "audio": audio,
            "audio_codec": a_codec, "meta": meta, "rotation": first.rotation}


# The CLI in a subprocess, without daemon_helpers' 120 s limit: the quick start over samples/ may
# take longer on a loaded 2-core host (pytest's own timeout still ends a hang).
run_cli = functools.partial(dh.run_cli, timeout=None)


def test_video_keeps_frames_timing_size_and_audio_bytes(tmp_path, fast_profile_path):
    tags = {"location": "+48.8566+002.3522/", "make": "Acme", "creation_time": "2024-05-01T10:00:00Z"}
    src = make_video(tmp_path / "clip.mp4", frames=30, metadata=tags)
    out = tmp_path / "out"
    assert main(["process", str(src), "--out", str(out), "--profile", str(fast_profile_path)]) == 0
    before, after = video_facts(src), video_facts(out / "clip.mp4")
    assert after["pts"] == before["pts"]
    assert after["rate"] == before["rate"] and after["size"] == before["size"]
    assert after["audio_codec"] == before["audio_codec"] == "aac"
    assert after["audio"] == before["audio"]  # copied untouched, packet for packet
    assert "location" not in after["meta"] and "make" not in after["meta"]
    assert after["meta"].get("creation_time", "").startswith("2024-05-01")


def test_variable_frame_rate_and_rotation_survive(tmp_path, fast_profile_path):
    pts = [0, 80, 170, 250, 400, 430, 520, 700, 760, 900, 1000, 1090]
    src = make_video(tmp_path / "vfr.mkv", frames=len(pts), vfr_pts=pts, audio=False)
    rot = make_video(tmp_path / "rot.mp4", frames=6, rotation=90, audio=False)
    out = tmp_path / "out"
    assert main(["process", str(src), str(rot), "--out", str(out), "--profile", str(fast_profile_path)]) == 0
    assert video_facts(out / "vfr.mkv")["pts"] == video_facts(src)["pts"]
    assert video_facts(out / "rot.mp4")["rotation"] == video_facts(rot)["rotation"] == 90


def test_audio_can_be_dropped_by_profile(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("detect: {device: cpu, faces: {scales: [1.0]}, plates: {enabled: false}}\noutput: {audio: drop}\n")
    src = make_video(tmp_path / "a.mp4", frames=6)
    assert main(["process", str(src), "--out", str(tmp_path / "o"), "--profile", str(profile)]) == 0
    assert video_facts(tmp_path / "o" / "a.mp4")["audio"] == []


def test_faces_in_video_are_masked_in_every_frame(tmp_path, fast_engine):
    src = make_video(tmp_path / "faces.mp4", frames=12, size=(400, 300), audio=False)
    result = fast_engine.process(src, tmp_path / "faces-out.mp4")
    assert result.counts["face"].masked_frames == 12
    assert result.counts["face"].tracks >= 5
    with av.open(str(src)) as a, av.open(str(tmp_path / "faces-out.mp4")) as b:
        for fa, fb in zip(a.decode(video=0), b.decode(video=0)):
            diff = np.abs(fa.to_ndarray(format="rgb24").astype(int) - fb.to_ndarray(format="rgb24").astype(int))
            assert (diff.max(axis=2) > 30).mean() > 0.05  # a real share of each frame was masked


def test_photo_loses_gps_and_exif_and_orientation_goes_to_pixels(tmp_path, fast_profile_path):
    im = Image.open(FACES_PHOTO)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    exif[0x010F] = "CameraMaker"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS IFD
    src = tmp_path / "gps.jpg"
    im.save(src, exif=exif.tobytes(), comment=b"private note")
    assert Image.open(src).getexif().get_ifd(0x8825)  # the fixture really carries GPS
    assert main(["process", str(src), "--out", str(tmp_path / "o"), "--profile", str(fast_profile_path)]) == 0
    out = Image.open(tmp_path / "o" / "gps.jpg")
    assert out.format == "JPEG"
    assert len(out.getexif()) == 0 and "exif" not in out.info and "comment" not in out.info
    assert out.size == (im.height, im.width)  # orientation applied to the pixels


def test_a_heic_photo_with_gps_xmp_and_a_thumbnail_comes_out_as_heic_with_none_of_them(tmp_path, fast_profile_path):
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is a dependency; run scripts/install.sh")
    pillow_heif.register_heif_opener()  # for Image.open in this test; the product registers its own
    face = Image.open(FACES_PHOTO).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 15"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPS IFD
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description exif:GPSLatitude="48,51.48N"/></x:xmpmeta>'
    heif = pillow_heif.from_pillow(face)
    heif.info["exif"], heif.info["xmp"] = exif.tobytes(), xmp
    src = tmp_path / "IMG_0001.HEIC"
    heif.save(src, quality=90, thumbnails=[96])  # phones embed an unmasked thumbnail
    written = pillow_heif.open_heif(src)
    assert written.info["exif"] and written.info["xmp"]  # the fixture is real
    assert b"thmb" in src.read_bytes()  # the item reference that marks a thumbnail
    assert Image.open(src).getexif().get_ifd(0x8825)

    proc = run_cli("process", str(src), "--out", str(tmp_path / "o"), "--json", "--profile", str(fast_profile_path))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "o" / "IMG_0001.HEIC"  # the name is kept: its suffix fits the content
    assert json.loads(proc.stdout)["output"] == str(out)
    raw = out.read_bytes()
    assert raw[4:12] == b"ftypheic"
    result = pillow_heif.open_heif(out)
    assert not result.info.get("exif") and not result.info.get("xmp") and not result.info.get("metadata")
    assert len(result) == 1
    for token in (b"thmb", b"Exif", b"iPhone", b"Apple", b"xmpmeta", b"GPS"):
        assert token not in raw, token
    decoded = Image.open(out)
    assert decoded.format == "HEIF" and decoded.size == face.size
    assert len(decoded.getexif()) == 0
    # The faces were masked: the output differs from the source where faces are, not everywhere.
    before, after = np.asarray(Image.open(src).convert("RGB"), np.int16), np.asarray(decoded.convert("RGB"), np.int16)
    changed = np.abs(before - after).max(axis=2) > 40
    assert 0.01 < changed.mean() < 0.6


def test_an_oversized_heic_is_refused_from_its_header(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif is a dependency; run scripts/install.sh")
    src = tmp_path / "big.heic"
    pillow_heif.from_pillow(Image.open(FACES_PHOTO).convert("RGB")).save(src)
    profile = tmp_path / "small.yaml"
    profile.write_text("limits: {max_pixels: 50000}\ndetect: {device: cpu, faces: {scales: [1.0]}, plates: {enabled: false}}\n")
    proc = run_cli("process", str(src), "--out", str(tmp_path / "o"), "--profile", str(profile))
    assert proc.returncode == 1 and "HEIF declares 400x268" in proc.stderr and "max_pixels" in proc.stderr
    assert not (tmp_path / "o" / "big.heic").exists()


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_photos_keep_their_format(tmp_path, fast_profile_path, suffix):
    src = tmp_path / f"p{suffix}"
    Image.open(FACES_PHOTO).save(src)
    assert main(["process", str(src), "--out", str(tmp_path / "o"), "--profile", str(fast_profile_path)]) == 0
    assert Image.open(tmp_path / "o" / src.name).format == {".png": "PNG", ".webp": "WEBP"}[suffix]


def test_folders_are_mirrored_and_stray_non_media_in_them_skipped_and_counted(tmp_path, fast_profile_path):
    tree = tmp_path / "in"
    (tree / "cam1" / "day2").mkdir(parents=True)
    Image.open(FACES_PHOTO).save(tree / "cam1" / "day2" / "a.jpg")
    (tree / "notes.txt").write_text("not media")
    (tree / "cam1" / "LICENSE").write_text("licence text\n" * 20)
    out = tmp_path / "out"
    proc = run_cli("process", str(tree), "--out", str(out), "--profile", str(fast_profile_path))
    assert proc.returncode == 0, proc.stderr
    assert (out / "cam1" / "day2" / "a.jpg").is_file()
    assert not (out / "notes.txt").exists() and not (out / "cam1" / "LICENSE").exists()
    assert "FAILED" not in proc.stderr
    assert "skipped 2 file(s) in folders that are not photos or videos" in proc.stderr
    # --json names each skipped file with its reason, and no output.
    proc = run_cli("process", str(tree), "--out", str(tmp_path / "o2"), "--json", "--profile", str(fast_profile_path))
    lines = {Path(d["input"]).name: d for d in map(json.loads, proc.stdout.splitlines())}
    assert proc.returncode == 0 and lines["notes.txt"] == {
        "input": str(tree / "notes.txt"), "skipped": True, "reason": "text file, not a photo or video"
    }
    assert lines["a.jpg"]["ok"] is True and "skipped" not in lines["a.jpg"]


def test_non_media_named_directly_or_named_as_media_in_a_folder_still_fails(tmp_path, fast_profile_path):
    tree = tmp_path / "in"
    tree.mkdir()
    (tree / "notes.txt").write_text("not media")
    (tree / "holiday.jpg").write_text("this is not a jpeg")  # claims to be a photo: a failure
    (tree / "empty.mp4").write_bytes(b"")
    (tree / "stream.m3u8").write_text("#EXTM3U\n#EXTINF:2,\n/etc/outside.mp4\n")  # a playlist is never skipped
    out = tmp_path / "out"
    proc = run_cli("process", str(tree), str(tree / "notes.txt"), "--out", str(out), "--profile", str(fast_profile_path))
    assert proc.returncode == 1
    failed = sorted(line.split(":")[0] for line in proc.stderr.splitlines() if line.startswith("FAILED"))
    assert failed == sorted(f"FAILED {tree / n}" for n in ("empty.mp4", "holiday.jpg", "notes.txt", "stream.m3u8"))
    assert "skipped 1 file(s)" in proc.stderr  # notes.txt inside the folder; named directly, it failed
    assert [p for p in out.rglob("*") if not p.is_dir()] == []


def test_the_readme_quick_start_over_samples_exits_0_with_every_sample_anonymized(tmp_path):
    # README: `anonymizer process samples/ --out ...`. samples/ also holds SOURCES.md and a licence.
    # The exit status is what is tested, not recall: one cheap face pass keeps this quick.
    profile = tmp_path / "quick.yaml"
    profile.write_text("detect: {device: cpu, faces: {scales: [1.0], flip: false}, plates: {enabled: false}}\n")
    samples = ROOT / "samples"
    media = sorted(p.name for p in samples.iterdir() if p.suffix.lower() in (".jpg", ".mp4"))
    assert any(n.endswith(".mp4") for n in media) and len(media) >= 6
    out = tmp_path / "x"
    proc = run_cli("process", str(samples), "--out", str(out), "--profile", str(profile))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == media
    others = len(list(samples.iterdir())) - len(media)
    assert f"skipped {others} file(s) in folders that are not photos or videos" in proc.stderr


def test_corrupt_and_truncated_videos_fail_without_output(tmp_path, fast_profile_path):
    good = make_video(tmp_path / "good.mkv", frames=40)
    data = good.read_bytes()
    (tmp_path / "half.mkv").write_bytes(data[: len(data) // 2])  # decodes about half, no error
    mp4 = make_video(tmp_path / "good.mp4", frames=20).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(mp4[: len(mp4) * 2 // 3])
    out = tmp_path / "out"
    for name in ("half.mkv", "cut.mp4"):
        proc = run_cli("process", str(tmp_path / name), "--out", str(out), "--json", "--profile", str(fast_profile_path))
        assert proc.returncode == 1, proc.stdout + proc.stderr
        line = json.loads(proc.stdout.strip().splitlines()[-1])
        assert line["ok"] is False and line["reason"]
    assert list(out.iterdir()) == []  # no partial output, no temporary file


def test_exit_zero_only_when_every_input_succeeds_and_existing_outputs_are_kept(tmp_path, fast_profile_path):
    src = tmp_path / "a.jpg"
    Image.open(FACES_PHOTO).save(src)
    out = tmp_path / "out"
    assert main(["process", str(src), "--out", str(out), "--profile", str(fast_profile_path)]) == 0
    first = (out / "a.jpg").read_bytes()
    assert main(["process", str(src), "--out", str(out), "--profile", str(fast_profile_path)]) == 1
    assert (out / "a.jpg").read_bytes() == first


def test_invalid_profile_is_reported_with_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mask: {method: smudge}\n")
    proc = run_cli("process", str(FACES_PHOTO), "--out", str(tmp_path / "o"), "--profile", str(bad))
    assert proc.returncode == 2 and "mask.method" in proc.stderr and "blur, pixelate, fill" in proc.stderr


def test_plate_photo_is_masked_where_the_plate_is(tmp_path, fast_engine):
    from anonymizer.media.image import read_photo

    photo = read_photo(PLATE_PHOTO, fast_engine.profile.limits)
    masked, regions = fast_engine.anonymize_image(photo.rgb)
    plates = regions[regions.class_id == 1]
    assert len(plates) >= 1
    # The masked plate region keeps almost none of its gradient energy.
    x1, y1, x2, y2 = plates.xyxy[np.argmax(plates.area)].astype(int)
    g0 = np.abs(np.diff(photo.rgb[y1:y2, x1:x2].astype(float).mean(2), axis=1)).mean()
    g1 = np.abs(np.diff(masked[y1:y2, x1:x2].astype(float).mean(2), axis=1)).mean()
    assert g1 < 0.2 * g0


def test_stream_tags_and_subtitle_streams_are_dropped(tmp_path, fast_profile_path):
    src = tmp_path / "tagged.mkv"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.metadata["title"] = "Camera of J. Doe, serial 1234"
        sub = c.add_stream("ass")  # a subtitle track, where dashcams put GPS and speed
        for i in range(10):
            f = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        assert sub is not None
    with av.open(str(src)) as c:
        assert len(c.streams) == 2
    assert main(["process", str(src), "--out", str(tmp_path / "o"), "--profile", str(fast_profile_path)]) == 0
    with av.open(str(tmp_path / "o" / "tagged.mkv")) as c:
        assert [s.type for s in c.streams] == ["video"]
        assert "title" not in c.streams.video[0].metadata


def test_validate_config_lists_every_error_and_exits_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mask: {method: smudge}\noutput: {audio: mute}\n")
    proc = run_cli("validate-config", str(ROOT / "profiles" / "default.yaml"), str(bad))
    assert proc.returncode == 1
    assert "default.yaml: valid" in proc.stdout
    assert "mask.method" in proc.stderr and "output.audio" in proc.stderr and "copy, drop" in proc.stderr


@pytest.mark.parametrize("size", [(480, 270), (322, 242)], ids=["height-not-multiple-of-4", "odd-chroma"])
def test_frame_sizes_outside_the_yuv_fast_path_are_masked_too(tmp_path, fast_engine, size):
    src = make_video(tmp_path / "odd.mp4", frames=4, size=size, audio=False)
    result = fast_engine.process(src, tmp_path / "odd-out.mp4")
    assert result.frames == 4 and result.counts["face"].masked_frames == 4
    # Pixels, not counts: the masks land where the faces are on these frame sizes, not shifted by
    # a misread chroma layout.
    assert_faces_changed(fast_engine, src, tmp_path / "odd-out.mp4", frames=4, min_boxes=4)


@pytest.mark.parametrize(
    ("name", "codec", "fps", "audio"),
    [
        ("c.avi", "mpeg4", 12, False),
        ("c.webm", "libvpx-vp9", 12, False),
        ("c.ts", "libx264", 12, True),
        ("c.mov", "libx264", 12, True),
        ("c.flv", "libx264", 12, False),
        ("c.mpg", "mpeg2video", 25, False),
        ("c.wmv", "msmpeg4", 12, False),
    ],
)
def test_every_accepted_container_is_written_back_in_kind_with_all_frames(tmp_path, fast_engine, name, codec, fps, audio):
    src = make_video(tmp_path / f"src-{name}", frames=8, size=(160, 120), codec=codec, fps=fps, audio=audio)
    result = fast_engine.process(src, tmp_path / name)
    assert result.output_path == tmp_path / name
    with av.open(str(result.output_path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 8
    with av.open(str(result.output_path)) as c:
        assert bool(c.streams.audio) == audio
