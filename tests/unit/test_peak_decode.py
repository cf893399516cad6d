"""CenterFace decoded to its heatmap's local peaks (``detect.faces.peak_window``), as CenterNet decodes:
hand-made maps whose box counts the old every-cell decode gets wrong, and the shipped photos,
where every face the every-cell decode finds is found again."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anonymizer.config import profile_from_dict
from anonymizer.detect.factory import build_detectors
from anonymizer.detect.onnx import CenterFace, decode_centerface, local_peaks
from anonymizer.detect.registry import builtin_weights
from anonymizer.errors import ConfigError

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("faces-*.jpg"))
H, W = 24, 32


def maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An empty heatmap (1, H, W), log-size map (2, H, W) of 8 px boxes, zero offsets (2, H, W)."""
    return np.zeros((1, H, W), np.float32), np.full((2, H, W), math.log(2), np.float32), np.zeros((2, H, W), np.float32)


def blob(heat: np.ndarray, scale: np.ndarray, y: int, x: int, peak: float) -> None:
    """A face: ``peak`` at (y, x) with an 8 px box, its 8 neighbours at half of it predicting 40 px
    boxes (the shoulders of a real blob predict other sizes; such a box overlaps the peak's by
    less than NMS's 0.3, so the every-cell decode keeps one of them beside the peak's)."""
    heat[0, y - 1 : y + 2, x - 1 : x + 2] = np.maximum(heat[0, y - 1 : y + 2, x - 1 : x + 2], peak / 2)
    scale[:, y - 1 : y + 2, x - 1 : x + 2] = math.log(10)
    heat[0, y, x] = peak
    scale[:, y, x] = math.log(2)


def test_two_adjacent_peaks_are_both_decoded_and_their_shoulders_are_not() -> None:
    heat, scale, offset = maps()
    blob(heat, scale, 10, 10, 0.9)
    blob(heat, scale, 10, 14, 0.7)  # three cells between the two peaks: faces 16 px apart
    boxes, scores = decode_centerface(heat, scale, offset, 0.12, (H * 4, W * 4), peak_window=3)
    assert sorted(scores.tolist()) == [np.float32(0.7), np.float32(0.9)]
    # Each peak's box spans its shoulders' 40 px boxes (centred on the cells around it).
    np.testing.assert_allclose(sorted(boxes.tolist()), [[18, 18, 66, 66], [34, 18, 82, 66]], atol=1e-4)
    # The every-cell decode also returns shoulder boxes that are no face's centre.
    old_boxes, _ = decode_centerface(heat, scale, offset, 0.12, (H * 4, W * 4), peak_window=0)
    assert len(old_boxes) > 2


def test_a_plateau_gives_one_box() -> None:
    heat, scale, offset = maps()
    heat[0, 5:7, 5:7] = 0.8  # four equal cells
    scale[:, 6, 6] = math.log(16)  # 8 px boxes and one 64 px box: NMS keeps more than one of them
    boxes, scores = decode_centerface(heat, scale, offset, 0.12, (H * 4, W * 4), peak_window=3)
    assert len(boxes) == 1 and scores.tolist() == [np.float32(0.8)]
    assert boxes[0].tolist() == [0.0, 0.0, 64.0, 64.0]  # the 64 px box about (6, 6), moved inside
    assert len(decode_centerface(heat, scale, offset, 0.12, (H * 4, W * 4), peak_window=0)[0]) > 1


def test_a_peak_below_the_threshold_gives_no_box() -> None:
    heat, scale, offset = maps()
    blob(heat, scale, 8, 8, 0.1)
    assert len(decode_centerface(heat, scale, offset, 0.12, (H * 4, W * 4), peak_window=3)[0]) == 0
    boxes, scores = decode_centerface(heat, scale, offset, 0.06, (H * 4, W * 4), peak_window=3)
    assert len(boxes) == 1 and scores.tolist() == [np.float32(0.1)]  # shoulders at 0.05: not peaks, not above


def test_a_peak_on_the_border_counts_and_a_wider_window_merges_close_peaks() -> None:
    heat = np.zeros((6, 6), np.float32)
    heat[0, 0], heat[0, 2], heat[5, 5] = 0.5, 0.6, 0.3
    strong = heat > 0.1
    assert set(zip(*np.nonzero(local_peaks(heat, 3) & strong), strict=True)) == {(0, 0), (0, 2), (5, 5)}
    assert set(zip(*np.nonzero(local_peaks(heat, 5) & strong), strict=True)) == {(0, 2), (5, 5)}


def covered(box: np.ndarray, boxes: np.ndarray) -> float:
    """The largest share of ``box`` that one of ``boxes`` covers."""
    iw = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
    return float((iw * ih).max() / ((box[2] - box[0]) * (box[3] - box[1])))


def test_on_the_shipped_photos_every_face_of_the_every_cell_decode_is_found_again() -> None:
    path, licence = builtin_weights("centerface")
    model = CenterFace(path, licence, threads=1)
    found = 0
    for sample in SAMPLES:
        rgb = np.array(Image.open(sample).convert("RGB"))
        h32, w32 = -(-rgb.shape[0] // 32) * 32, -(-rgb.shape[1] // 32) * 32
        x = np.zeros((1, 3, h32, w32), np.float32)
        x[0, :, : rgb.shape[0], : rgb.shape[1]] = rgb.transpose(2, 0, 1)
        heat, scale, offset, _ = model.session.run(None, {"input.1": x})
        size = rgb.shape[:2]
        old, old_scores = decode_centerface(heat[0], scale[0], offset[0], 0.12, size, peak_window=0)
        new, _ = decode_centerface(heat[0], scale[0], offset[0], 0.12, size, peak_window=3)
        assert len(new) <= len(old)
        for box in old[old_scores >= 0.3]:
            # A peak's box spans its neighbours' boxes: it covers what the every-cell box covered.
            assert len(new) and covered(box, new) >= 0.95
            found += 1
    assert found >= 20  # the three crowd photos hold dozens of faces


def test_the_profile_key_reaches_the_detector() -> None:
    detectors, _, _ = build_detectors(
        profile_from_dict({"detect": {"faces": {"peak_window": 3}, "plates": {"enabled": False}}}).detect
    )
    assert detectors["face"].raw.peak_window == 3


def test_a_yolo_class_refuses_peak_window() -> None:
    # The plate model has no heatmap: the key would be silently ignored, so the profile is refused.
    with pytest.raises(ConfigError) as err:
        profile_from_dict({"detect": {"plates": {"peak_window": 3}}}, source="p.yaml")
    assert "detect.plates.peak_window" in str(err.value) and "centerface only" in str(err.value)
    assert profile_from_dict({"detect": {"plates": {"peak_window": 0}}}).detect.plates.peak_window == 0
