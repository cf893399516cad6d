"""Manual regions and exclusions, end to end through the real engine: pixels, not counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from media_factory import decode_rgb, load_rgb, make_video
from review_media import texture, two_faces_photo

from anonymizer.mask.regions import ManualMasksError
from anonymizer.review.sidecar import load_sidecars, parse_sidecar_text, sidecar_for, sidecars_of

MOVING = """
regions:
  - keys:
      - {frame: 4, box: [20, 20, 80, 80]}
      - {frame: 16, box: [200, 140, 260, 200]}
"""


def _box_at(frame: int) -> np.ndarray:
    t = (frame - 4) / 12
    return (1 - t) * np.array([20, 20, 80, 80]) + t * np.array([200, 140, 260, 200])


def test_moving_box_is_masked_on_exactly_its_frames(fast_engine, tmp_path):
    src = make_video(tmp_path / "clip.mp4", source=texture((320, 240)), audio=False, pan=False)
    result = fast_engine.process(src, tmp_path / "out.mp4", masks=parse_sidecar_text(MOVING))
    frames = decode_rgb(result.output_path)
    assert len(frames) == 24
    for i, (picture, frame) in enumerate(zip(decode_rgb(src), frames)):
        if 4 <= i <= 16:
            # Inside the interpolated box (2 px in, for the codec's blocks): the black fill.
            x1, y1, x2, y2 = (_box_at(i) + [2, 2, -2, -2]).round().astype(int)
            assert frame[y1:y2, x1:x2].mean() < 12, i
            # ... and nowhere it is not: where the box was at the start, untouched from frame 6 on.
            if i >= 6:
                assert np.abs(frame[22:38, 22:38].astype(int) - picture[22:38, 22:38]).mean() < 8, i
        else:
            for box in (_box_at(4), _box_at(16)):
                x1, y1, x2, y2 = box.round().astype(int)
                assert np.abs(frame[y1:y2, x1:x2].astype(int) - picture[y1:y2, x1:x2]).mean() < 8, i
    assert result.summary()["manual"] == {"regions": 1, "masked": 13, "frames": 13}
    rows = result.timeline.as_dict()["rows"]
    assert rows["manual"] == [[4, 13, "manual"]]


def test_exclusion_removes_a_detection_inside_it_and_keeps_one_only_touching_it(fast_engine, tmp_path):
    src = two_faces_photo(tmp_path / "two.jpg")
    faces = fast_engine.detect_image(load_rgb(src))
    faces = faces[faces.confidence >= 0.5]
    assert len(faces) == 2
    a, b = sorted(faces.xyxy.round().astype(int).tolist())
    inside = [a[0] - 10, a[1] - 10, a[2] + 10, a[3] + 10]  # face A lies wholly inside
    touching = [b[0] + 20, b[1] - 10, b[2] + 10, b[3] + 10]  # face B's left part sticks out
    sidecar = sidecar_for(src)
    sidecar.write_text(f"exclusions:\n  - box: {inside}\n    classes: [face]\n  - box: {touching}\n")
    assert sidecars_of(src) == [sidecar]
    masks = load_sidecars([sidecar])
    result = fast_engine.process(src, tmp_path / "out.jpg", masks=masks)
    before, after = load_rgb(src).astype(int), load_rgb(result.output_path).astype(int)

    def changed(box: list[int]) -> float:
        x1, y1, x2, y2 = box
        return float(np.abs(before[y1:y2, x1:x2] - after[y1:y2, x1:x2]).mean())

    assert changed(a) < 3, "the excluded face was masked"
    assert changed(b) > 15, "a face only touching an exclusion must stay masked"
    summary = result.summary()
    assert summary["exclusions"]["removed"] == 1 and summary["exclusions"]["frames"] == 1
    assert summary["exclusions"]["sidecar_sha256"] == [__import__("hashlib").sha256(sidecar.read_bytes()).hexdigest()]
    # Control: without the sidecar the same face is masked, so the check above means something.
    plain = fast_engine.process(src, tmp_path / "plain.jpg")
    x1, y1, x2, y2 = a
    assert np.abs(before[y1:y2, x1:x2] - load_rgb(plain.output_path).astype(int)[y1:y2, x1:x2]).mean() > 15


def test_a_sidecar_with_several_errors_reports_every_one(tmp_path):
    path = tmp_path / "clip.mp4.masks.yaml"
    path.write_text(
        "regions:\n"
        "  - box: [10, 10, 5, 50]\n"
        "    method: smudge\n"
        "  - polygon: [[1, 2]]\n"
        "    colour: red\n"
        "  - keys: [{frame: 9, box: [0, 0, 4, 4]}, {frame: 3, box: [0, 0, 4, 4]}]\n"
        "exclusions:\n"
        "  - box: [0, 0, 10, 10]\n"
        "    classes: [cat]\n"
        "    start: soon\n"
        "frames: 3\n"
    )
    with pytest.raises(ManualMasksError) as info:
        load_sidecars([path])
    lines = str(info.value).splitlines()
    expected = [
        "at 'frames': unknown key; allowed keys: exclusions, regions",
        "at 'regions[0].method': 'smudge' is not one of: fill, blur, pixelate",
        "at 'regions[0].box': expected x2 > x1 and y2 > y1",
        "at 'regions[1].colour': unknown key; allowed keys: box, end, end_frame, keys, method, polygon, start, start_frame",
        "at 'regions[1].polygon': expected a list of at least 3 [x, y] points",
        "at 'regions[2].keys': key boxes must be in increasing time order",
        "at 'exclusions[0].classes': expected a list of: face, plate",
        "at 'exclusions[0].start': expected seconds (2.5) or a timestamp",
    ]
    assert len(lines) == len(expected)
    for want in expected:
        assert any(line.startswith(f"{path}: {want}") for line in lines), want
    # The same through validate-config, for checking a sidecar before dropping it beside a source.
    from daemon_helpers import run_cli

    run = run_cli("validate-config", str(path))
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == len(expected)


def test_masks_outside_the_frame_or_past_the_end_fail_the_job_and_write_nothing(fast_engine, tmp_path):
    src = make_video(tmp_path / "clip.mp4", source=texture((160, 120)), frames=12, size=(160, 120), audio=False, pan=False)
    masks = parse_sidecar_text(
        "regions:\n"
        "  - box: [100, 10, 170, 50]\n"  # 10 px past the right edge
        "  - box: [0, 0, 10, 10]\n    end_frame: 12\n"  # frames are 0..11
        "exclusions:\n  - box: [0, 0, 10, 10]\n    end: 1.5\n",  # the clip lasts 1 s
        "clip.mp4.masks.yaml",
    )
    with pytest.raises(ManualMasksError) as info:
        fast_engine.process(src, tmp_path / "out.mp4", masks=masks)
    text = str(info.value)
    assert "regions[0]: reaches outside the 160x120 frame" in text
    assert "regions[1]: frame 12 is past the last frame (11)" in text
    assert "exclusions[0]: 1.5 s is past the end of the clip" in text
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".anonymizer-*"))


def test_process_reads_the_sidecar_beside_a_photo_and_writes_its_report(fast_profile_path, tmp_path):
    from daemon_helpers import run_cli

    (tmp_path / "in").mkdir()
    src = two_faces_photo(tmp_path / "in" / "two.jpg")
    sidecar_for(src).write_text("regions:\n  - box: [200, 220, 280, 290]\n")
    run = run_cli("process", str(src), "--out", str(tmp_path / "out"), "--profile", str(fast_profile_path),
                  "--report", str(tmp_path / "qa"), "--json")
    assert run.returncode == 0, run.stderr
    line = json.loads(run.stdout)
    assert line["manual"] == {"regions": 1, "masked": 1, "frames": 1} and line["report"].endswith("two.jpg.qa.html")
    out = load_rgb(tmp_path / "out" / "two.jpg")
    assert out[222:288, 202:278].mean() < 10  # the profile's fill colour (black) over the box
    assert (tmp_path / "qa" / "two.jpg.qa.json").is_file()
    # --masks with errors: every one, exit 2, nothing written.
    bad = tmp_path / "bad.masks.yaml"
    bad.write_text("regions:\n  - box: [1, 2, 3]\n  - polygon: []\n")
    run = run_cli("process", str(src), "--out", str(tmp_path / "out2"), "--masks", str(bad))
    assert run.returncode == 2 and "regions[0].box" in run.stderr and "regions[1].polygon" in run.stderr
    assert not (tmp_path / "out2").exists()


def test_a_folder_sidecar_and_the_source_sidecar_add_up_folder_first(tmp_path):
    src = tmp_path / "clip.mp4"
    src.write_bytes(b"")
    (tmp_path / ".masks.yaml").write_text("regions:\n  - box: [0, 0, 10, 10]\n")
    sidecar_for(src).write_text("regions:\n  - box: [5, 5, 20, 20]\nexclusions:\n  - box: [0, 0, 50, 50]\n")
    (tmp_path / "other.mp4.masks.yaml").write_text("regions:\n  - box: [1, 1, 2, 2]\n")  # another source's
    paths = sidecars_of(src)
    assert paths == [tmp_path / ".masks.yaml", tmp_path / "clip.mp4.masks.yaml"]
    masks = load_sidecars(paths)
    assert [r.key for r in masks.regions] == [f"{paths[0]}: regions[0]", f"{paths[1]}: regions[0]"]
    assert len(masks.exclusions) == 1 and len(masks.sha256) == 2
