"""Fixed-camera clip generator: every object-frame's true box is where the object really is.

Built from the shipped sample photos (no ../shared/eval needed), with flat-coloured squares
painted on them as the labelled objects, so that a test can tell from the pixels alone whether a
true box sits on its object: blue squares on the background (standing or painted out), cyan
squares on the photos that cross the scene.
"""

from __future__ import annotations

import numpy as np
import pytest
from media_factory import FACES_PHOTO, PLATE_PHOTO, SAMPLES, load_rgb

from anonymizer.evaluate import fixed_camera, videos

SIZE = (320, 180)
BLUE = (0, 0, 255)
CYAN = (0, 255, 255)


def with_squares(path, boxes, colour) -> fixed_camera.LabelledPhoto:
    rgb = load_rgb(path).copy()
    boxes = np.array(boxes, np.float32)
    for x1, y1, x2, y2 in boxes.astype(int):
        rgb[y1:y2, x1:x2] = colour
    return fixed_camera.LabelledPhoto(rgb, boxes, np.ones(len(boxes), bool), np.zeros((0, 4), np.float32), path.name)


@pytest.fixture(scope="module")
def photos():
    # Background: the 1920x1080 gate photo with three 120 px squares near its middle.
    background = with_squares(PLATE_PHOTO, [[700, 400, 820, 520], [900, 420, 1020, 540], [1100, 380, 1220, 500]], BLUE)
    others = [
        with_squares(FACES_PHOTO, [[150, 80, 190, 120]], CYAN),
        with_squares(SAMPLES / "faces-maksssksksss209.jpg", [[120, 60, 160, 100], [300, 100, 330, 130]], CYAN),
    ]
    return background, others


def plan(photos, seed, **kw):
    background, others = photos
    kw.setdefault("n_frames", 48)
    return fixed_camera.plan_fixed_clip(background, others, seed=seed, size_wh=SIZE, **kw)


def interior(box, shrink=3):
    x1, y1, x2, y2 = box
    return int(np.ceil(x1)) + shrink, int(np.ceil(y1)) + shrink, int(x2) - shrink, int(y2) - shrink


def colour_share(frame, box, colour, tolerance=40) -> float:
    x1, y1, x2, y2 = interior(box)
    if x2 <= x1 or y2 <= y1:
        return 1.0  # too small to judge after the shrink
    patch = frame[y1:y2, x1:x2].astype(int)
    return float(np.mean(np.all(np.abs(patch - colour) <= tolerance, axis=2)))


def test_the_same_seed_gives_the_same_clip_and_another_seed_another(photos):
    background, others = photos
    a, b = plan(photos, 3), plan(photos, 3)
    assert a == b
    assert plan(photos, 4) != a
    frames_a = list(fixed_camera.FixedClipRenderer(background, others, a).frames(seed=1))
    frames_b = list(fixed_camera.FixedClipRenderer(background, others, b).frames(seed=1))
    for (fa, ta), (fb, tb) in zip(frames_a, frames_b):
        assert np.array_equal(fa, fb)
        assert np.array_equal(ta.boxes, tb.boxes) and np.array_equal(ta.object_ids, tb.object_ids)


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_true_boxes_lie_inside_the_frame_on_their_objects(photos, seed):
    background, others = photos
    renderer = fixed_camera.FixedClipRenderer(background, others, plan(photos, seed, keep_prob=1.0, motion_prob=1.0))
    w, h = SIZE
    seen = 0
    for index in range(renderer.plan.n_frames):
        frame, truth = renderer.scene_frame(index)
        assert len(truth.boxes) == len(truth.object_ids)
        for box, oid in zip(truth.boxes, truth.object_ids):
            assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
            colour = BLUE if renderer.roles[oid] == "standing" else CYAN
            # The object's own flat colour fills its true box (a box off by a few pixels would not).
            assert colour_share(frame, box, colour) > 0.9, (index, oid, box)
            seen += 1
    assert seen > 0


def test_standing_objects_are_counted_in_every_frame_they_are_not_walked_over(photos):
    background, others = photos
    p = plan(photos, 2, keep_prob=1.0, motion_prob=0.0, n_frames=72)
    renderer = fixed_camera.FixedClipRenderer(background, others, p)
    standing = [i for i, role in enumerate(renderer.roles) if role == "standing"]
    assert len(standing) == 3
    for index in range(p.n_frames):
        _, truth = renderer.scene_frame(index)
        ids = set(truth.object_ids.tolist())
        for oid in standing:
            if oid in ids:
                box = truth.boxes[list(truth.object_ids).index(oid)]
                assert np.allclose(box, renderer.standing[oid] - [*renderer.window_origin(index)] * 2)
                continue
            # Absent only while a crossing covers part of it.
            box = renderer.standing[oid] - [*renderer.window_origin(index)] * 2
            assert any(_covers(renderer, k, index, box) for k in range(len(p.crossings))), (index, oid)


def _covers(renderer, k, index, box) -> bool:
    at = renderer.plan.crossings[k].position(index)
    if at is None:
        return False
    wx, wy = renderer.window_origin(index)
    sh, sw = renderer.sprites[k].rgb.shape[:2]
    x, y = at[0] - wx, at[1] - wy
    return x < box[2] and x + sw > box[0] and y < box[3] and y + sh > box[1]


def test_painted_out_objects_leave_no_trace(photos):
    background, others = photos
    renderer = fixed_camera.FixedClipRenderer(background, others, plan(photos, 2, keep_prob=0.0, motion_prob=0.0))
    assert "standing" not in renderer.roles
    for index in range(0, renderer.plan.n_frames, 8):
        frame, _ = renderer.scene_frame(index)
        blue = np.all(np.abs(frame.astype(int) - BLUE) <= 40, axis=2)
        assert blue.sum() < 20, index  # the three 45 px squares would be ~6,000 pixels


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_crossing_objects_enter_and_leave_at_the_frame_edges(photos, seed):
    background, others = photos
    p = plan(photos, seed, n_frames=240, motion_prob=0.0)
    renderer = fixed_camera.FixedClipRenderer(background, others, p)
    assert p.crossings, "every clip has something crossing it"
    w, h = SIZE
    mx, my = p.margin_xy
    for k, crossing in enumerate(p.crossings):
        sh, sw = renderer.sprites[k].rgb.shape[:2]
        for key in (crossing.keyframes[0], crossing.keyframes[-1]):
            x, y = key[1] - mx, key[2] - my
            # At its first and last frame the crop lies wholly outside the view, against one edge.
            assert x + sw <= 1 or x >= w - 1 or y + sh <= 1 or y >= h - 1, (k, key)
    counted: set[int] = set()
    for index in range(p.n_frames):
        counted |= set(renderer.scene_frame(index)[1].object_ids.tolist())
    assert any(role != "standing" and oid in counted for oid, role in enumerate(renderer.roles))
    for k, (crossing, sprite) in enumerate(zip(p.crossings, renderer.sprites)):
        for box in sprite.boxes:
            frames = [i for i in range(p.n_frames) if crossing.position(i) is not None]
            at = {i: np.array(crossing.position(i) * 2) - [mx, my, mx, my] + box for i in frames}
            visible = [i for i in frames if at[i][0] < w and at[i][2] > 0 and at[i][1] < h and at[i][3] > 0]
            if not visible:
                continue  # still on its way in when the clip ends
            first = visible[0]
            x1, y1, x2, y2 = at[first]
            step = float(np.abs(at[first] - at[first - 1]).max()) if first - 1 in at else 0.0
            # The first frame any of it is in view, it straddles an edge (or is one frame's move past it).
            assert min(x1, y1, w - x2, h - y2) <= step + 1, (k, first, at[first], step)


def test_crossing_speeds_scale_with_size_like_a_camera_sees_them(photos):
    background, others = photos
    for seed in range(20):
        p = plan(photos, seed, n_frames=480, motion_prob=0.0)
        renderer = fixed_camera.FixedClipRenderer(background, others, p)
        for k, crossing in enumerate(p.crossings):
            (t0, x0, y0), (t1, x1, y1) = crossing.keyframes[0], crossing.keyframes[1]
            size = float(np.sqrt(np.prod(renderer.sprites[k].boxes[0, 2:] - renderer.sprites[k].boxes[0, :2])))
            sizes_per_s = np.hypot(x1 - x0, y1 - y0) / (t1 - t0) * p.fps / size
            low, high = fixed_camera.FAST_SIZES_PER_S if crossing.kind == "fast" else fixed_camera.WALK_SIZES_PER_S
            # The first carried box's size (the anchor may be another carried box).
            assert low * 0.3 <= sizes_per_s <= high * 3, (seed, k, crossing.kind, sizes_per_s)


def test_camera_motion_moves_the_true_boxes_with_the_view(photos):
    background, others = photos
    p = plan(photos, 1, keep_prob=1.0, motion_prob=1.0, n_frames=72)
    assert p.motion in ("shake", "pan")
    start, end = p.motion_frames
    assert any(p.window_offsets[i] != (0, 0) for i in range(start, end))
    assert all(off == (0, 0) for off in p.window_offsets[:start])
    renderer = fixed_camera.FixedClipRenderer(background, others, p)
    for index in range(start, end):
        frame, truth = renderer.scene_frame(index)
        for box, oid in zip(truth.boxes, truth.object_ids):
            if renderer.roles[oid] == "standing":
                assert colour_share(frame, box, BLUE) > 0.9


def test_encoded_fixed_clip_is_scored_by_the_video_leak_count(photos, tmp_path):
    background, others = photos
    p = plan(photos, 2, keep_prob=1.0, motion_prob=0.0, n_frames=24)
    src = tmp_path / "fixed.mp4"
    clip = fixed_camera.synthesize_fixed(background, others, p, src, seed=0)
    assert len(clip.truths) == 24 and len(clip.is_face) == len(clip.roles)
    unmasked = videos.count_leaks("plain", src, src, clip.truths, clip.is_face)
    assert unmasked.object_frames > 0 and len(unmasked.leaked) == unmasked.object_frames
    blacked = []
    for frame, truth in zip(videos.read_clip(src), clip.truths):
        frame = frame.copy()
        for x1, y1, x2, y2 in truth.boxes.astype(int):
            frame[max(0, y1 - 1) : y2 + 1, max(0, x1 - 1) : x2 + 1] = 0
        blacked.append(frame)
    masked = tmp_path / "masked.mp4"
    videos.write_clip(blacked, masked, p.fps, crf=0)
    result = videos.count_leaks("blacked", src, masked, clip.truths, clip.is_face)
    assert result.object_frames == unmasked.object_frames and not result.leaked


def test_the_halves_follow_the_fixed_split_of_the_eval_readme():
    import hashlib

    for rel in ("images/a.jpg", "images/0_Parade_marchingband_1_20.jpg", "br/AYO9034.jpg", "x"):
        first = hashlib.sha1(rel.encode()).hexdigest()[0]
        assert fixed_camera.half_of(rel) == ("confirm" if first in "89abcdef" else "tune")
    assert {fixed_camera.half_of(f"images/{i}.jpg") for i in range(20)} == {"tune", "confirm"}


def test_crossers_are_small_fast_and_enter_and_leave_at_every_edge(photos):
    background, others = photos
    size = (1920, 1080)
    edges_in, edges_out, at_once = set(), set(), 0
    for seed in range(12):
        p = fixed_camera.plan_fixed_clip(
            background, others, seed=seed, n_frames=72, size_wh=size, motion_prob=0.0, keep_prob=0.0, crossers=True
        )
        assert p == fixed_camera.plan_fixed_clip(
            background, others, seed=seed, n_frames=72, size_wh=size, motion_prob=0.0, keep_prob=0.0, crossers=True
        )
        renderer = fixed_camera.FixedClipRenderer(background, others, p)
        mx, my = p.margin_xy
        for k, c in enumerate(p.crossings):
            assert c.kind == "crosser"
            sprite = renderer.sprites[k]
            sh, sw = sprite.rgb.shape[:2]
            anchor = sprite.boxes[np.argmin(np.abs(np.sqrt(np.prod(sprite.boxes[:, 2:] - sprite.boxes[:, :2], axis=1)) - 26))]
            side = float(np.sqrt(np.prod(anchor[2:] - anchor[:2])))
            assert 11 <= side <= 41, side
            (t0, x0, y0), (t1, x1, y1) = c.keyframes[0], c.keyframes[-1]
            speed = np.hypot(x1 - x0, y1 - y0) / (t1 - t0)  # px a frame: the frame's width in 0.7-2 s
            assert size[0] / (2.0 * p.fps) - 1 <= speed <= size[0] / (0.7 * p.fps) + 1, speed

            def edge(x, y):
                x, y = x - mx, y - my
                return "left" if x + sw <= 0 else "right" if x >= size[0] else "top" if y + sh <= 0 else "bottom"

            edges_in.add(edge(x0, y0))
            edges_out.add(edge(x1, y1))
            assert edge(x0, y0) != edge(x1, y1)
        for index in range(p.n_frames):
            at_once = max(at_once, sum(c.position(index) is not None for c in p.crossings))
    assert edges_in == edges_out == {"left", "right", "top", "bottom"}
    assert at_once >= 3  # several at once


def test_the_reference_runs_every_pass_on_every_frame_without_gating_and_keeps_the_rest():
    from anonymizer.config import load_profile

    profile = load_profile(None)
    ref = videos.reference_profile(profile)
    assert ref.detect.gating is False
    for spec in (ref.detect.faces, ref.detect.plates):
        assert spec.every_n_frames == 1 and spec.video_full_every == 1
    # Thresholds, scales, tracker and masks are the profile's: only the schedule differs.
    assert ref.detect.faces.threshold == profile.detect.faces.threshold
    assert ref.detect.plates.video_scales == profile.detect.plates.video_scales
    assert ref.track == profile.track and ref.mask == profile.mask


def test_a_crossing_never_fills_more_than_four_fifths_of_a_narrow_frame(photos):
    # A tall, narrow view: the faces' wished size (up to 0.22 of the height) with their context
    # is wider than the frame, so the crops are scaled down to 0.8 of its width.
    background, others = photos
    w, h = 96, 400
    at_the_limit = 0
    for seed in range(4):
        p = fixed_camera.plan_fixed_clip(background, others, seed=seed, n_frames=48, size_wh=(w, h), motion_prob=0.0)
        for c in p.crossings:
            x1, y1, x2, y2 = c.crop_xyxy
            sw, sh = (x2 - x1) * c.scale, (y2 - y1) * c.scale
            assert sw <= 0.8 * w + 1e-9 and sh <= 0.8 * h + 1e-9
            at_the_limit += sw == pytest.approx(0.8 * w)
    assert at_the_limit >= 2  # the limit was reached, not merely unneeded
