"""The review editor's server parts without a server: drawn shapes checked as a sidecar, and
frames served by index from one decoder kept open (tests/review/test_review_editor.py runs them
through the API and a browser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from media_factory import decode_rgb, make_video
from review_media import texture

from anonymizer.api.editor.frames import FrameCache, encode_jpeg
from anonymizer.api.editor.shapes import MAX_SHAPES, check_shapes
from anonymizer.config import LimitsSpec
from anonymizer.review.sidecar import parse_sidecar_text

CLIP = {"width": 320, "height": 240, "photo": False, "frames": 24, "duration_s": 2.0}


def test_drawn_shapes_become_the_sidecar_the_daemon_reads() -> None:
    drawn = {
        "regions": [
            {"box": [100, 80, 180, 150], "start_frame": 10, "end_frame": 10, "method": "fill"},
            {"keys": [{"frame": 2, "box": [20, 20, 60, 60]}, {"frame": 6, "box": [220, 20, 260, 60]}]},
            {"polygon": [[5, 5], [60, 5], [30, 40]], "start": "0:01.5"},
        ],
        "exclusions": [{"box": [0, 0, 100, 100], "classes": ["face"], "start_frame": 0, "end_frame": 3}],
    }
    checked = check_shapes(json.dumps(drawn).encode(), **CLIP)
    assert checked.errors == () and checked.yaml_text is not None
    masks = parse_sidecar_text(checked.yaml_text)
    assert len(masks.regions) == 3 and len(masks.exclusions) == 1
    box = masks.regions[0]
    assert box.points_at(10, 10 / 12) is not None and box.points_at(11, 11 / 12) is None
    assert masks.regions[1].points_at(4, None)[:, 0].min() == pytest.approx(120)


def test_every_error_is_tied_to_its_shape_malformed_and_misfit_alike() -> None:
    drawn = {
        "regions": [
            {"box": [10, 10, 50, 50]},
            {"box": [10, 10, 330, 50]},  # wider than the frame
            {"box": [50, 10, 10, 50]},  # x2 < x1
            {"keys": [{"frame": 3, "box": [1, 1, 9, 9]}]},  # one key only
            {"box": [1, 1, 9, 9], "start_frame": 20, "end_frame": 30},  # past the last frame
        ],
        "exclusions": [{"box": [1, 1, 9, 9], "classes": ["tattoo"]}],
    }
    checked = check_shapes(json.dumps(drawn).encode(), **CLIP)
    assert checked.yaml_text is None
    where = sorted({(e["list"], e["index"]) for e in checked.errors})
    assert where == [("exclusions", 0), ("regions", 1), ("regions", 2), ("regions", 3), ("regions", 4)]
    assert all("<editor>" not in e["message"] for e in checked.errors)
    assert check_shapes(b"{not json", **CLIP).errors[0]["message"] == "the body is not JSON"
    many = {"regions": [{"box": [1, 1, 9, 9]}] * (MAX_SHAPES + 1)}
    assert "at most" in check_shapes(json.dumps(many).encode(), **CLIP).errors[0]["message"]


@pytest.mark.parametrize(
    "codec, vfr", [("libx264", False), ("mpeg4", False), ("libx264", True)], ids=["h264", "mpeg4-gop12", "h264-vfr"]
)
def test_frames_by_index_are_exact_stepping_jumping_back_and_past_the_end(
    tmp_path: Path, codec: str, vfr: bool
) -> None:
    frames = 60
    pts = [i * 83 + (i % 3) * 17 for i in range(frames)] if vfr else None  # uneven gaps (time base 1/1000)
    clip = make_video(
        tmp_path / "c.mp4", source=texture((64, 48)), frames=frames, size=(64, 48), fps=12, audio=False,
        codec=codec, vfr_pts=pts,
    )  # fmt: skip
    expected = [encode_jpeg(rgb) for rgb in decode_rgb(clip)]
    assert len(expected) == frames
    cache = FrameCache(size=1)
    limits = LimitsSpec()
    try:
        # Steps forward, jumps back, far forward (seeks) and into the middle of a group of pictures.
        for index in (5, 6, 7, 2, 59, 0, 30, 31, 13, 12, 58):
            assert cache.video_frame(clip, limits, index) == expected[index], index
        assert cache.seeks(clip)  # jumps went through the frame table, not a decode from the start
        assert cache.video_frame(clip, limits, frames) is None
        assert cache.video_frame(clip, limits, 3) == expected[3]
    finally:
        cache.close()
