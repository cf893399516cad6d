"""Fast small crossers in a fixed camera, with the real face model: pixels, not counts.

A small real face (cut from a shipped sample photo, 20 px wide) crosses a still 1080p scene at 80
px a frame, as a face crossing the frame in 0.7 s does. The 640 px dense pass shows it at 7 px and
does not find it; the full plan's resolution does. The default schedule (gating, the
full plan every 4th detector frame, the dense pass between) must mask it in every frame where at
least half of it is visible, once a detector frame has found it: the changed area is seen at the
full plan's resolution on every detector frame, and the tracker links the far-apart sightings.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from media_factory import FACES_PHOTO, PLATE_PHOTO, decode_rgb, half_visible, load_rgb

from anonymizer.config import load_profile, profile_from_dict
from anonymizer.detect.multiscale import Pass
from anonymizer.detections import box_iou
from anonymizer.evaluate import metrics
from anonymizer.pipeline import Engine

W, H = 1920, 1080
STEP = 80  # px a frame
FACE_W = 20


@pytest.fixture(scope="module")
def engine() -> Engine:
    # The default profile's faces and schedule; plates off (nothing here for them, and they are slow).
    default = load_profile(None)
    profile = profile_from_dict({"name": "crossers-test", "detect": {"device": "cpu", "plates": {"enabled": False}}})
    assert profile.detect.faces == default.detect.faces and profile.detect.gating == default.detect.gating
    return Engine(profile)


@pytest.fixture(scope="module")
def sprite(engine) -> tuple[np.ndarray, np.ndarray]:
    """A real face with some context around it, scaled to 20 px wide, and its box in the sprite.

    The sample photo's third most confident face: at 20 px the dense pass misses it (the two most
    confident ones it still finds at 7 px), so only the full plan's resolution does.
    """
    photo = load_rgb(FACES_PHOTO)
    detector = engine.detectors["face"]
    doubled = cv2.resize(photo, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    whole = Pass(1.0, 0, 0, doubled.shape[1], doubled.shape[0])  # one pass: the photo plan's 3x is slow
    found = detector.merge_passes(detector.detect_passes([doubled], plans=[[whole]])[0])
    best = found.xyxy[int(np.argsort(-found.confidence)[2])] / 2
    x1, y1, x2, y2 = best
    bw, bh = x2 - x1, y2 - y1
    crop = (int(max(0, x1 - 0.6 * bw)), int(max(0, y1 - 0.6 * bh)), int(x2 + 0.6 * bw), int(y2 + 1.2 * bh))
    scale = FACE_W / bw
    rgb = photo[crop[1] : crop[3], crop[0] : crop[2]]
    rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    box = (best - [crop[0], crop[1], crop[0], crop[1]]) * scale
    return rgb, box.astype(np.float32)


def background() -> np.ndarray:
    # The gate photo (no faces in it), as a still 1080p scene.
    return cv2.resize(load_rgb(PLATE_PHOTO), (W, H), interpolation=cv2.INTER_AREA)


def render(
    tmp_path: Path, sprite, paths: list[list[tuple[int, int]]], name: str
) -> tuple[Path, list[list[np.ndarray]]]:
    """Write a clip with one sprite per path (top-left corners per frame); return it and each
    frame's true face boxes (per path, None-free: boxes may lie partly outside the frame)."""
    rgb, box = sprite
    sh, sw = rgb.shape[:2]
    scene = background()
    rng = np.random.default_rng(0)
    truths: list[list[np.ndarray]] = []
    path = tmp_path / f"{name}.mp4"
    n = len(paths[0])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"crf": "18"}
        for i in range(n):
            frame = scene.copy()
            boxes = []
            for corners in paths:
                x, y = corners[i]
                x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + sw), min(H, y + sh)
                if x0 < x1 and y0 < y1:
                    frame[y0:y1, x0:x1] = rgb[y0 - y : y1 - y, x0 - x : x1 - x]
                boxes.append(box + [x, y, x, y])
            noisy = np.clip(frame.astype(np.int16) + rng.normal(0, 2, frame.shape).astype(np.int16), 0, 255)
            video_frame = av.VideoFrame.from_ndarray(noisy.astype(np.uint8), format="rgb24")
            video_frame.pts = i
            for packet in stream.encode(video_frame):
                container.mux(packet)
            truths.append(boxes)
        for packet in stream.encode(None):
            container.mux(packet)
    return path, truths



def leaks(engine: Engine, tmp_path: Path, sprite, paths, name: str) -> list[tuple[int, int]]:
    """(frame, crosser) of every frame where a crosser is at least half visible and not hidden."""
    src, truths = render(tmp_path, sprite, paths, name)
    dst = tmp_path / f"{name}.out.mp4"
    engine.process(src, dst)
    before, after = decode_rgb(src), decode_rgb(dst)
    assert len(before) == len(after) == len(truths)
    out = []
    for i, (a, b, boxes) in enumerate(zip(before, after, truths)):
        for k, box in enumerate(boxes):
            if half_visible(box, W, H):
                clipped = np.clip(box, 0, [W, H, W, H])
                if not metrics.box_hidden(a, b, clipped, ellipse=True).hidden:
                    out.append((i, k))
    return out


def crossing(sprite, edge: str, offset: int = 0) -> list[tuple[int, int]]:
    """Top-left corners of a sprite entering at ``edge`` and crossing to the opposite one at STEP px a frame."""
    sh, sw = sprite[0].shape[:2]
    if edge in ("left", "right"):
        xs = list(range(-sw, W + STEP, STEP))
        y = H // 2 - sh // 2 + offset
        corners = [(x, y) for x in xs]
    else:
        ys = list(range(-sh, H + STEP, STEP))
        x = W // 2 - sw // 2 + offset
        corners = [(x, y) for y in ys]
    return corners[::-1] if edge in ("right", "bottom") else corners


def test_the_face_is_found_at_full_resolution_and_missed_by_the_dense_pass(engine, sprite):
    from anonymizer.detect.schedule import dense_pass

    rgb, box = sprite
    scene = background()
    scene[500 : 500 + rgb.shape[0], 900 : 900 + rgb.shape[1]] = rgb
    target = (box + [900, 500, 900, 500])[None]
    detector = engine.detectors["face"]

    def finds(p: Pass) -> bool:
        found = detector.merge_passes(detector.detect_passes([scene], video=True, plans=[[p]])[0])
        return bool(len(found)) and box_iou(target, found.xyxy).max() > 0.3

    assert finds(Pass(1.0, 800, 400, 1100, 700)), "the test face must be findable at full resolution"
    assert not finds(dense_pass(H, W, detector.spec, None)), "... and too small for the dense pass"


def test_a_small_face_crossing_at_80_px_a_frame_is_masked_in_every_frame_half_of_it_shows(engine, sprite, tmp_path):
    # In the 640 px dense pass this face is 7 px: only the full plan's resolution finds it.
    assert leaks(engine, tmp_path, sprite, [crossing(sprite, "left")], "left") == []


def test_small_faces_entering_at_every_edge_at_once_two_by_two_in_opposite_directions(engine, sprite, tmp_path):
    paths = [
        crossing(sprite, "left", offset=-200),
        crossing(sprite, "right", offset=200),
        crossing(sprite, "top", offset=-400),
        crossing(sprite, "bottom", offset=400),
    ]
    n = min(len(p) for p in paths)  # the vertical ones cross the shorter side: the clip ends with them
    assert leaks(engine, tmp_path, sprite, [p[:n] for p in paths], "every-edge") == []
