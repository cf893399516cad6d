"""Fixed-camera change maps and the per-class detection schedule, on arrays."""

from dataclasses import replace

import numpy as np

from anonymizer.config import ClassSpec
from anonymizer.detect import gating
from anonymizer.detect.multiscale import ClassDetector, Pass
from anonymizer.detect.schedule import ClassSchedule, dense_pass, finest_view, restrict, zoom_windows
from anonymizer.detections import Detections, box_iou


def scene(seed: int = 0, h: int = 360, w: int = 640) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = (rng.random((h // 16, w // 16)) * 200 + 20).astype(np.float32)
    return np.kron(base, np.ones((16, 16), np.float32))


def noisy(gray: np.ndarray, seed: int, sigma: float = 6.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(gray + rng.normal(0, sigma, gray.shape), 0, 255).astype(np.uint8)


def test_sensor_noise_and_a_light_change_are_not_change():
    still = scene()
    ref = gating.block_means(noisy(still, 1))
    for seed, gain in ((2, 0), (3, 12)):  # fresh noise; the whole scene 12 levels brighter
        change = gating.compare(ref, gating.block_means(noisy(still + gain, seed)), (640, 360))
        assert not change.cells.any() and not change.camera_moved and len(change.boxes) == 0


def test_an_object_is_a_change_with_context_around_it():
    still = scene()
    ref = gating.block_means(noisy(still, 1))
    moved = still.copy()
    moved[100:140, 600:640] = 255 - moved[100:140, 600:640]  # something enters at the right edge
    change = gating.compare(ref, gating.block_means(noisy(moved, 2)), (640, 360))
    assert not change.camera_moved
    (x1, y1, x2, y2), = change.boxes
    assert x1 <= 600 - 40 and y1 <= 100 - 40 and x2 == 640 and y2 >= 140 + 40  # context, up to the edge
    assert change.touches(np.array([[610, 110, 630, 130], [10, 300, 40, 340]], np.float32)).tolist() == [True, False]


STRAYS = [(40, 40), (40, 1800), (1000, 80), (1000, 1850), (300, 500), (700, 1400), (200, 1200),
          (900, 600), (560, 200), (100, 900), (800, 1000), (450, 1650)]


def with_strays(still: np.ndarray) -> np.ndarray:
    """``still`` (1080p) with a walker and a dozen single changed blocks scattered over it:
    compression grain and stray cells, as a fixed camera's clip shows them across a GOP."""
    moved = still.copy()
    moved[500:620, 900:960] = 255 - moved[500:620, 900:960]  # the walker
    for y, x in STRAYS:
        moved[y : y + 8, x : x + 8] = 255 - moved[y : y + 8, x : x + 8]
    return moved


def test_stray_changed_cells_over_a_still_frame_get_small_crops_not_the_whole_frame():
    # One crop around all of them was the whole frame, on every gated frame until the refresh.
    still = scene(h=1080, w=1920)
    ref = gating.block_means(noisy(still, 1))
    change = gating.compare(ref, gating.block_means(noisy(with_strays(still), 2)), (1920, 1080))
    assert not change.camera_moved and len(change.boxes) == len(STRAYS) + 1
    crops = gating.merge_crops(change.boxes)  # what a fully convolutional model runs on
    assert gating.covered_px(crops, (1920, 1080)) < 0.15 * 1920 * 1080
    for y, x in [*STRAYS, (500, 900), (612, 952)]:  # every changed cell is still looked at, with context
        assert any(b[0] <= x - 40 and b[1] <= y - 40 and b[2] >= x + 48 and b[3] >= y + 48 for b in crops), (x, y)
    (x1, y1, x2, y2), = change.around_all  # what a fixed-input model's windows tile
    assert x1 == y1 == 0 and x2 > 1850 and y2 > 1000


def test_the_areas_that_still_change_are_kept_whole_and_the_settled_ones_dropped():
    # Compression grain a new GOP left all over the frame stays as it is for the rest of the GOP;
    # the walker keeps moving. Only his area is looked at again, whole as before.
    still = scene(h=1080, w=1920)
    ref = gating.block_means(noisy(still, 1))
    before = with_strays(still)
    after = before.copy()
    after[500:620, 960:976] = 255 - after[500:620, 960:976]  # he steps right
    looked = gating.block_means(noisy(before, 2))
    now = gating.block_means(noisy(after, 3))
    change = gating.compare(ref, now, (1920, 1080))
    assert len(change.boxes) == len(STRAYS) + 1
    active = change.active(gating.compare(looked, now, (1920, 1080), shift=False), (1920, 1080))
    (x1, y1, x2, y2), = active.boxes
    walker = [b for b in change.boxes if b[0] <= 900 <= b[2] and b[1] <= 500 <= b[3]][0]
    assert [x1, y1, x2, y2] == walker.tolist()  # his whole area, not just the cells that moved
    assert active.on(np.array([[900, 500, 960, 620], [40, 40, 48, 48]], np.float32)).tolist() == [True, False]


def test_stray_cells_cost_a_convolutional_model_their_crops_and_a_fixed_input_one_no_more_windows():
    class Letterboxed(Boxes):
        fixed_input = 640

    still = cv2_resize(scene(), 1920, 1080)
    rgb = np.zeros((1080, 1920, 3), np.uint8)
    faces = ClassSchedule(
        ClassDetector(Boxes([]), ClassSpec(scales=(1.0,), video_scales=(1.0,), flip=False, tile_size=2048), 0),
        gate=True, refresh_frames=50,
    )
    plates = ClassSchedule(
        ClassDetector(Letterboxed([]), ClassSpec(scales=(0.5, 1.0), video_scales=(0.5, 1.0), flip=False, video_full_every=1,
                                                 tile_size=1280, video_zoom=2.0), 0),
        gate=True, refresh_frames=50,
    )
    for schedule in (faces, plates):
        assert schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))[2]  # the refresh
        schedule.refreshed(Detections.empty())
    blocks = gating.block_means(noisy(with_strays(still), 2))
    passes = faces.plan(1, rgb, blocks)[0]
    assert len(passes) > 6 and sum((p.x1 - p.x0) * (p.y1 - p.y0) for p in passes) < 0.15 * 1920 * 1080
    # Windows centred on each of 13 areas would cost more than the box around them all, tiled.
    plates.plan(1, rgb, blocks)
    change = gating.compare(plates.reference, blocks, (1920, 1080))
    assert len(change.boxes) > 6 and plates.last_crops.tolist() == change.around_all.tolist()


def merged_plainly(boxes: np.ndarray, most: int, overhead: float = gating.CROP_OVERHEAD_PX) -> np.ndarray:
    """merge_crops' rule with every pair's cost computed again at each step."""
    boxes = [b for b in np.asarray(boxes, np.float64)]
    while len(boxes) > 1:
        best = None
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                joint = np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])
                extra = np.prod(joint[2:] - joint[:2]) - np.prod(a[2:] - a[:2]) - np.prod(b[2:] - b[:2])
                if best is None or extra < best[0]:
                    best = (extra, i, j, joint)
        extra, i, j, joint = best
        if extra > overhead and len(boxes) <= most:
            break
        boxes = [b for k, b in enumerate(boxes) if k not in (i, j)] + [joint]
    return np.array(boxes, np.float32)


def test_changed_areas_share_a_crop_where_that_costs_no_more_than_two():
    near = np.array([[0, 0, 100, 100], [110, 0, 210, 100]], np.float32)  # 10 px apart
    assert gating.merge_crops(near).tolist() == [[0, 0, 210, 100]]
    far = np.array([[0, 0, 100, 100], [1000, 500, 1100, 600]], np.float32)
    assert sorted(gating.merge_crops(far).tolist()) == sorted(far.tolist())
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 1800, (60, 2)).astype(np.float32)
    many = np.concatenate([corners, corners + 100], axis=1)
    merged = gating.merge_crops(many, most=10)
    assert len(merged) <= 10
    for box in many:  # merging only ever grows a crop
        assert any((m[:2] <= box[:2]).all() and (m[2:] >= box[2:]).all() for m in merged)
    # The costs kept row by row as pairs merge give what recomputing them every step gives.
    for trial in range(20):
        n = int(rng.integers(2, 30))
        corners = rng.integers(0, 1800, (n, 2)).astype(np.float32)
        boxes = np.concatenate([corners, corners + rng.integers(20, 300, (n, 2))], axis=1)
        assert sorted(gating.merge_crops(boxes, most=8).tolist()) == sorted(merged_plainly(boxes, 8).tolist()), trial
    # Rain or snow: past MERGE_LIMIT areas the pairwise search is not run, one box holds them all.
    corners = rng.integers(0, 1800, (gating.MERGE_LIMIT + 1, 2)).astype(np.float32)
    assert gating.merge_crops(np.concatenate([corners, corners + 8], axis=1)).tolist() == [
        [*corners.min(axis=0).tolist(), *(corners.max(axis=0) + 8).tolist()]
    ]


def test_a_pan_is_camera_motion():
    still = scene()
    ref = gating.block_means(noisy(still, 1))
    panned = np.roll(still, 24, axis=1)
    assert gating.compare(ref, gating.block_means(noisy(panned, 2)), (640, 360)).camera_moved


def test_restrict_crops_convolutional_passes_and_keeps_fixed_input_passes_whole():
    passes = [Pass(1.0, 0, 0, 640, 360), Pass(2.0, 0, 0, 1280, 720, True), Pass(2.0, 1280, 0, 1920, 720)]
    boxes = np.array([[100, 50, 200, 150]], np.float32)
    assert restrict(passes, boxes, None) == [Pass(1.0, 100, 50, 200, 150), Pass(2.0, 200, 100, 400, 300, True)]
    assert restrict(passes, boxes, 640) == passes[:2]  # the third pass's area did not change
    assert restrict(passes, np.zeros((0, 4), np.float32), None) == []


def test_dense_pass_is_one_unmirrored_whole_frame_pass_never_upscaled():
    spec = ClassSpec(video_dense_side=960)
    assert dense_pass(1080, 1920, spec, None) == Pass(0.5, 0, 0, 960, 540)
    assert dense_pass(360, 640, spec, None) == Pass(1.0, 0, 0, 640, 360)
    assert dense_pass(1080, 1920, spec, 640) == Pass(1.0, 0, 0, 1920, 1080)


class Boxes:
    """A raw detector that reports fixed boxes wherever its input covers them (test data)."""

    fixed_input = None

    def __init__(self, boxes):
        self.boxes = np.asarray(boxes, np.float32)
        self.calls = []

    def __call__(self, rgb, threshold):
        self.calls.append(rgb.shape[:2])
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)


def test_schedule_cadence_gating_refresh_and_camera_motion():
    spec = ClassSpec(scales=(1.0,), video_scales=(1.0, 2.0), flip=True, video_flip=True, video_full_every=3, tile_size=4096)
    schedule = ClassSchedule(ClassDetector(Boxes([]), spec, 0), gate=True, refresh_frames=10)
    rgb = np.zeros((360, 640, 3), np.uint8)
    kept = Detections(np.array([[10, 10, 40, 40]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))
    kinds = []
    for i in range(13):
        passes, carried, refresh = schedule.plan(i, rgb, gating.block_means(noisy(scene(), 10 + i)))
        if refresh:
            schedule.refreshed(kept)
            assert len(passes) == 4 and not len(carried)  # the full plan: 2 scales, each mirrored
            kinds.append("refresh")
        else:
            assert passes == [] and len(carried) == 1  # nothing changed: nothing runs, the refresh's boxes stay
            kinds.append("gated")
    # A refresh due on frame 10 waits for the full plan's frame (12); the frames before it stay
    # gated against the old one.
    assert kinds == ["refresh"] + ["gated"] * 11 + ["refresh"]

    # A pan: the cadence goes on over whole frames, and the next full plan is a new refresh.
    moving = ClassSchedule(ClassDetector(Boxes([]), spec, 0), gate=True, refresh_frames=50)
    frames = [np.roll(scene(), 8 * i, axis=1) for i in range(4)]
    plans = [moving.plan(i, rgb, gating.block_means(noisy(f, i))) for i, f in enumerate(frames)]
    assert [(len(p), r) for p, _, r in plans] == [(4, True), (1, False), (1, False), (4, True)]
    assert moving.stats["camera_moved"] == 1  # frame 1; frame 2 had no reference left to compare with

    ungated = ClassSchedule(ClassDetector(Boxes([]), spec, 0), gate=False, refresh_frames=10)
    sizes = [len(ungated.plan(i, rgb, None)[0]) for i in range(6)]
    assert sizes == [4, 1, 1, 4, 1, 1]  # full plan every third detector frame, the dense pass between


def test_a_slow_pan_of_a_real_photo_is_camera_motion_though_few_blocks_change():
    import cv2
    from media_factory import FACES_PHOTO, load_rgb

    gray = cv2.cvtColor(cv2.resize(load_rgb(FACES_PHOTO), (640, 360)), cv2.COLOR_RGB2GRAY).astype(np.float32)
    ref = gating.block_means(noisy(gray, 1, 4.0))
    still = gating.compare(ref, gating.block_means(noisy(gray, 2, 4.0)), (640, 360))
    assert not still.camera_moved
    shifted = cv2.warpAffine(gray, np.float32([[1, 0, 3], [0, 1, 0]]), (640, 360), borderMode=cv2.BORDER_REFLECT)
    assert gating.compare(ref, gating.block_means(noisy(shifted, 2, 4.0)), (640, 360)).camera_moved


def test_a_change_over_part_of_a_large_face_is_detected_on_a_crop_showing_all_of_it():
    change = np.array([[100, 100, 140, 140]], np.float32)  # a hand moving over the face's edge
    faces = np.array([[120, 60, 320, 300], [500, 10, 540, 50]], np.float32)
    grown = gating.grow_over(change, faces, (640, 360))
    assert grown.tolist() == [[100, 100, 140, 140], [20, 0, 420, 360]]  # the far face is carried, not re-run


def test_zoom_windows_cover_every_changed_box_at_the_zoom_in_input_sized_crops():
    boxes = np.array([[100, 50, 140, 70], [300, 0, 640, 300]], np.float32)  # a small change, a wide one
    windows = zoom_windows(boxes, 2.0, 640, 360, 640)
    assert all(p.scale == 2.0 and (p.x1 - p.x0, p.y1 - p.y0) == (640, 640) for p in windows)
    assert all(0 <= p.x0 and p.x1 <= 1280 and 0 <= p.y0 and p.y1 <= 720 for p in windows)  # inside the frame
    for x1, y1, x2, y2 in boxes * 2:  # every pixel of every box lies in some window
        for x in np.linspace(x1, x2 - 1, 9):
            for y in np.linspace(y1, y2 - 1, 9):
                assert any(p.x0 <= x < p.x1 and p.y0 <= y < p.y1 for p in windows), (x, y)
    assert len(windows) == len(set(windows))
    # A frame smaller than a window at that zoom: one window, the whole enlarged frame.
    assert zoom_windows(np.array([[10, 10, 20, 20]], np.float32), 2.0, 640, 100, 200) == [Pass(2.0, 0, 0, 400, 200)]


def test_gated_frames_of_a_fixed_input_model_also_look_closer_at_what_changed():
    class Letterboxed(Boxes):
        fixed_input = 640

    spec = ClassSpec(scales=(1.0,), video_scales=(1.0,), flip=False, video_full_every=1, tile_size=1280, video_zoom=2.0)
    schedule = ClassSchedule(ClassDetector(Letterboxed([]), spec, 0), gate=True, refresh_frames=50)
    rgb = np.zeros((360, 640, 3), np.uint8)
    still = scene()
    first, _, refresh = schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))
    assert refresh and first == [Pass(1.0, 0, 0, 640, 360)]  # a refresh: the plan alone, over the whole frame
    schedule.refreshed(Detections.empty())
    assert schedule.plan(1, rgb, gating.block_means(noisy(still, 2)))[0] == []  # nothing changed: nothing runs
    entered = still.copy()
    entered[200:232, 40:104] = 255 - entered[200:232, 40:104]  # a vehicle comes in at the left
    passes = schedule.plan(2, rgb, gating.block_means(noisy(entered, 3)))[0]
    assert passes[0] == Pass(1.0, 0, 0, 640, 360)  # the whole pass, as the full plan shows it ...
    zoomed = passes[1:]  # ... and the change, twice as large
    assert zoomed and all(p.scale == 2.0 and p.x1 - p.x0 == 640 for p in zoomed)
    assert any(p.x0 <= 80 and p.x1 >= 208 and p.y0 <= 400 and p.y1 >= 464 for p in zoomed)
    # The zoom belongs to the full plan: a dense frame between two full ones runs the dense pass alone.
    every_other = ClassSchedule(ClassDetector(Letterboxed([]), replace(spec, video_full_every=2), 0), gate=True, refresh_frames=50)
    every_other.plan(0, rgb, gating.block_means(noisy(still, 1)))
    assert every_other.plan(1, rgb, gating.block_means(noisy(entered, 3)))[0] == [Pass(1.0, 0, 0, 640, 360)]
    assert len(every_other.plan(2, rgb, gating.block_means(noisy(entered, 4)))[0]) > 1
    off = ClassSchedule(ClassDetector(Letterboxed([]), replace(spec, video_zoom=0.0), 0), gate=True, refresh_frames=50)
    off.plan(0, rgb, gating.block_means(noisy(still, 1)))
    assert off.plan(1, rgb, gating.block_means(noisy(entered, 3)))[0] == [Pass(1.0, 0, 0, 640, 360)]


def test_a_shaking_fixed_camera_is_detected_on_every_frame_until_it_is_still_again():
    spec = ClassSpec(scales=(1.0,), video_scales=(1.0,), flip=False, every_n_frames=2, video_full_every=3, tile_size=4096)
    rgb = np.zeros((360, 640, 3), np.uint8)
    still = scene()
    jolts = {6: 24, 7: -16, 8: 32, 9: 8}  # frames 6-9: the camera shakes, then rests where it was

    def run(schedule: ClassSchedule, picture) -> list[int]:
        detected = []
        for i in range(24):
            if schedule.wants(i):
                detected.append(i)
                _, _, refresh = schedule.plan(i, rgb, gating.block_means(noisy(picture(i), i)))
                if refresh:
                    schedule.refreshed(Detections.empty())
        return detected

    shaken = ClassSchedule(ClassDetector(Boxes([]), spec, 0), gate=True, refresh_frames=50)
    detected = run(shaken, lambda i: np.roll(still, jolts.get(i, 0), axis=1))
    assert {7, 9} <= set(detected)  # odd frames the cadence skips, run while the camera shook
    assert not [i for i in detected if i % 2 and i > 14]  # still again: back to every other frame
    assert shaken.stats["shaken"] > 0

    # A camera that moves from the start (a pan) was never a still one: the cadence stays.
    panning = ClassSchedule(ClassDetector(Boxes([]), spec, 0), gate=True, refresh_frames=50)
    assert run(panning, lambda i: np.roll(still, 8 * i, axis=1)) == list(range(0, 24, 2))
    assert panning.stats["shaken"] == 0


def test_the_closer_look_is_relative_to_the_full_plans_finest_view_at_any_resolution():
    from anonymizer.config import Profile

    plates = Profile().detect.plates  # zoom-out and 1x in 1280 px tiles, letterboxed to 640
    detector = ClassDetector(Boxes([]), plates, 1)
    # 640x360: the whole frame at its own size; 1080p: the 1x tiles show it at half size.
    assert finest_view(detector.plan(360, 640, video=True), plates, 640, 360, 640) == 1.0
    assert finest_view(detector.plan(1080, 1920, video=True), plates, 640, 1080, 1920) == 0.5

    class Letterboxed(Boxes):
        fixed_input = 640

    schedule = ClassSchedule(ClassDetector(Letterboxed([]), replace(plates, video_full_every=1), 1), gate=True, refresh_frames=50)
    rgb = np.zeros((1080, 1920, 3), np.uint8)
    still = scene(h=1080, w=1920)
    schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))
    schedule.refreshed(Detections.empty())
    entered = still.copy()
    entered[600:700, 100:400] = 255 - entered[600:700, 100:400]  # a car comes in
    passes = schedule.plan(1, rgb, gating.block_means(noisy(entered, 2)))[0]
    closer = [p for p in passes if p.x1 - p.x0 == 640 and p.y1 - p.y0 == 640]
    assert closer and {p.scale for p in closer} == {1.0}  # twice the tiles' 0.5: the source's own pixels


def test_every_gated_detector_frame_sees_the_changed_area_at_the_full_plans_resolution():
    # A 1080p still scene; a small face-sized change. The dense pass would show it at 1/3 size.
    spec = ClassSpec(scales=(1.0,), video_scales=(1.0,), flip=False, video_full_every=4, video_dense_side=640, tile_size=2048)
    schedule = ClassSchedule(ClassDetector(Boxes([]), spec, 0), gate=True, refresh_frames=50)
    rgb = np.zeros((1080, 1920, 3), np.uint8)
    still = cv2_resize(scene(), 1920, 1080)
    assert schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))[2]  # the refresh
    schedule.refreshed(Detections.empty())
    for i in (1, 2, 3):  # dense frames of the cadence
        moved = still.copy()
        x = 300 + 80 * i
        moved[500:528, x : x + 28] = 255 - moved[500:528, x : x + 28]
        passes, _, refresh = schedule.plan(i, rgb, gating.block_means(noisy(moved, 1 + i)))
        assert not refresh and passes, i
        assert all(p.scale == 1.0 for p in passes)  # full resolution, not the dense pass's 1/3
        assert any(p.x0 <= x and p.x1 >= x + 28 and p.y0 <= 500 and p.y1 >= 528 for p in passes)
        area = sum((p.x1 - p.x0) * (p.y1 - p.y0) for p in passes)
        assert area < 0.05 * 1920 * 1080  # the cost follows the changed area
    assert 0 < schedule.stats["changed_px"] < 0.05 * schedule.stats["frame_px"]


def test_a_fixed_input_model_sees_what_changed_in_windows_at_the_full_plans_finest_view():
    class Letterboxed(Boxes):
        fixed_input = 640

    spec = ClassSpec(scales=(0.5, 1.0), video_scales=(0.5, 1.0), flip=False, video_full_every=3, tile_size=1280, video_zoom=2.0)
    schedule = ClassSchedule(ClassDetector(Letterboxed([]), spec, 0), gate=True, refresh_frames=50)
    rgb = np.zeros((1080, 1920, 3), np.uint8)
    still = cv2_resize(scene(), 1920, 1080)
    schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))
    schedule.refreshed(Detections.empty())
    moved = still.copy()
    moved[600:620, 900:960] = 255 - moved[600:620, 900:960]  # a small plate
    passes, _, _ = schedule.plan(1, rgb, gating.block_means(noisy(moved, 2)))  # not a full frame
    # The plan's 1280 px tiles show 1080p at half size: one 640 px window at 0.5 over the change.
    assert passes and all(p.scale == 0.5 and (p.x1 - p.x0, p.y1 - p.y0) == (640, 540) for p in passes)
    assert len(passes) < len(schedule.detector.plan(1080, 1920, video=True))
    assert any(p.x0 <= 450 and p.x1 >= 480 and p.y0 <= 300 and p.y1 >= 310 for p in passes)


def test_a_due_refresh_waits_for_the_full_plan_the_frames_before_it_stay_gated_and_it_looks_closer():
    # A small plate crossing on the frames between the due refresh and the full plan's frame was
    # seen by the dense pass alone there: the whole 1080p frame letterboxed to 640 px (a third).
    class Letterboxed(Boxes):
        fixed_input = 640

    spec = ClassSpec(
        scales=(0.5, 1.0), video_scales=(0.5, 1.0), flip=False, video_full_every=3, tile_size=1280,
        video_zoom=2.0, video_zoom_every_frame=True,
    )
    schedule = ClassSchedule(ClassDetector(Letterboxed([]), spec, 0), gate=True, refresh_frames=2)
    rgb = np.zeros((1080, 1920, 3), np.uint8)
    still = cv2_resize(scene(), 1920, 1080)
    assert schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))[2]
    schedule.refreshed(Detections.empty())
    for i in (1, 2):  # the refresh is due from frame 2 on; the full plan's next frame is 3
        moved = still.copy()
        x = 600 + 90 * i
        moved[600:620, x : x + 60] = 255 - moved[600:620, x : x + 60]
        passes, _, refresh = schedule.plan(i, rgb, gating.block_means(noisy(moved, 1 + i)))
        assert not refresh and passes, i
        assert Pass(1.0, 0, 0, 1920, 1080) not in passes  # not the dense pass ...
        # ... but the closer look at the source's own pixels, over the plate.
        assert any(p.scale == 1.0 and p.x0 <= x and p.x1 >= x + 60 and p.y0 <= 600 and p.y1 >= 620 for p in passes), i
    assert schedule.stats["gated"] == 2 and schedule.stats["dense"] == 0
    # The full plan's frame refreshes: the plan over the whole frame, and, like every full-plan
    # frame of a still camera, its closer look over what changed since the old refresh.
    moved = still.copy()
    moved[600:620, 870:930] = 255 - moved[600:620, 870:930]
    passes, _, refresh = schedule.plan(3, rgb, gating.block_means(noisy(moved, 9)))
    plan = schedule.detector.plan(1080, 1920, video=True)
    assert refresh and passes[: len(plan)] == plan
    assert any(p.scale == 1.0 and p.x0 <= 870 and p.x1 >= 930 and p.y0 <= 600 and p.y1 >= 620 for p in passes[len(plan) :])
    assert schedule.stats["refresh"] == 2
    # Nothing changed since the refresh before: the plan alone.
    schedule.refreshed(Detections.empty())
    for i in range(4, 9):
        schedule.plan(i, rgb, gating.block_means(noisy(still, 10 + i)))
    passes, _, refresh = schedule.plan(9, rgb, gating.block_means(noisy(still, 30)))
    assert refresh and passes == plan


def test_the_closer_look_runs_on_every_gated_detector_frame_when_asked():
    class Letterboxed(Boxes):
        fixed_input = 640

    spec = ClassSpec(
        scales=(0.5, 1.0), video_scales=(0.5, 1.0), flip=False, video_full_every=3, tile_size=1280, video_zoom=2.0
    )
    rgb = np.zeros((1080, 1920, 3), np.uint8)
    still = cv2_resize(scene(), 1920, 1080)
    moved = still.copy()
    moved[600:620, 900:960] = 255 - moved[600:620, 900:960]  # a small plate crossing

    def between_full_frames(every_frame: bool) -> list[Pass]:
        schedule = ClassSchedule(
            ClassDetector(Letterboxed([]), replace(spec, video_zoom_every_frame=every_frame), 0),
            gate=True,
            refresh_frames=50,
        )
        schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))
        schedule.refreshed(Detections.empty())
        return schedule.plan(1, rgb, gating.block_means(noisy(moved, 2)))[0]  # not a full frame

    off, on = between_full_frames(False), between_full_frames(True)
    assert off and all(p.scale == 0.5 for p in off)  # the finest view alone (the full plan's tiles)
    closer = [p for p in on if p not in off]
    assert on[: len(off)] == off and closer  # the same windows, and the closer look ...
    # ... at video_zoom times the finest view (the source's own pixels), over the change.
    assert all(p.scale == 1.0 and (p.x1 - p.x0, p.y1 - p.y0) == (640, 640) for p in closer)
    assert any(p.x0 <= 900 and p.x1 >= 960 and p.y0 <= 600 and p.y1 >= 620 for p in closer)


def test_a_frame_most_of_which_changed_keeps_its_finest_windows_without_the_closer_look():
    class Letterboxed(Boxes):
        fixed_input = 640

    spec = ClassSpec(
        scales=(0.5, 1.0), video_scales=(0.5, 1.0), flip=False, video_full_every=3, tile_size=1280,
        video_zoom=2.0, video_zoom_every_frame=True, video_zoom_max_share=0.5,
    )
    rgb = np.zeros((1080, 1920, 3), np.uint8)
    still = cv2_resize(scene(), 1920, 1080)

    def closer(passes: list[Pass]) -> list[Pass]:  # the closer look: the source's own pixels, in windows
        return [p for p in passes if p.scale == 1.0 and p.x1 - p.x0 == 640]

    def second_frame(picture: np.ndarray) -> tuple[list[Pass], ClassSchedule]:
        schedule = ClassSchedule(ClassDetector(Letterboxed([]), spec, 0), gate=True, refresh_frames=50)
        schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))
        schedule.refreshed(Detections.empty())
        return schedule.plan(1, rgb, gating.block_means(noisy(picture, 2)))[0], schedule  # not a full frame

    small = still.copy()
    small[600:620, 900:960] = 255 - small[600:620, 900:960]  # a small plate crossing: looked at closer
    passes, schedule = second_frame(small)
    assert closer(passes) and schedule.stats["zoom_capped"] == 0
    most = still.copy()
    for x in range(0, 1920, 128):  # rain, swaying leaves: a quarter of the cells, their context most of the frame
        most[:, x : x + 32] = 255 - most[:, x : x + 32]
    passes, schedule = second_frame(most)
    assert schedule.stats["gated"] == 1, schedule.stats  # still a fixed camera
    assert any(p.scale == 0.5 for p in passes) and not closer(passes)  # the finest view still sees all of it
    assert schedule.stats["zoom_capped"] == 1
    # The full plan's frames keep the closer look, and 1 (the default) never leaves it out.
    schedule.plan(2, rgb, gating.block_means(noisy(most, 3)))
    assert closer(schedule.plan(3, rgb, gating.block_means(noisy(most, 4)))[0])
    spec = replace(spec, video_zoom_max_share=1.0)
    assert closer(second_frame(most)[0])


def cv2_resize(gray: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    return cv2.resize(gray, (w, h), interpolation=cv2.INTER_LINEAR)


def test_an_object_a_change_only_touches_is_looked_at_again_whole():
    # A walker passes just under a standing face: the changed cells (widened by the context) end a
    # few pixels below the face's box, which ``touches`` counts (a cell of slack), so the face is no
    # longer carried from the refresh: the crops must show the whole face again.
    spec = ClassSpec(scales=(1.0,), video_scales=(1.0,), flip=False, video_full_every=1, tile_size=4096)
    schedule = ClassSchedule(ClassDetector(Boxes([]), spec, 0), gate=True, refresh_frames=50)
    rgb = np.zeros((720, 1280, 3), np.uint8)
    still = cv2_resize(scene(), 1280, 720)
    assert schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))[2]
    face = np.array([[300, 40, 340, 83]], np.float32)
    schedule.refreshed(Detections(face, np.array([0.9], np.float32), np.array([0], np.int32)))
    walked = still.copy()
    walked[136:160, 300:340] = 255 - walked[136:160, 300:340]  # changed cells widened by 48 px: from y 88
    passes, carried, refresh = schedule.plan(1, rgb, gating.block_means(noisy(walked, 2)))
    assert not refresh
    assert not len(carried)  # touched: looked at again rather than carried
    assert any(p.x0 <= 300 and p.y0 <= 40 and p.x1 >= 340 and p.y1 >= 83 for p in passes), passes


def test_a_still_camera_looks_for_plates_on_the_frames_the_cadence_skips_over_small_changes_only():
    from anonymizer.config import Profile

    class Letterboxed(Boxes):
        fixed_input = 640

    # (video_zoom_every_frame off: this is about the finest view alone; the closer look has its own tests.)
    plates = replace(Profile().detect.plates, every_n_frames=2, video_gated_every_frame=True, video_zoom_every_frame=False)
    schedule = ClassSchedule(ClassDetector(Letterboxed([]), plates, 1), gate=True, refresh_frames=50)
    rgb = np.zeros((1080, 1920, 3), np.uint8)
    still = scene(h=1080, w=1920)
    assert not schedule.wants(1)  # no refresh yet: nothing to compare an off-cadence frame with
    assert schedule.wants(0)
    schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))
    schedule.refreshed(Detections.empty())
    assert schedule.wants(1)
    plate = still.copy()
    plate[600:640, 100:180] = 255 - plate[600:640, 100:180]  # a small plate crossing
    passes, carried, refresh = schedule.plan(1, rgb, gating.block_means(noisy(plate, 2)))
    assert passes and not refresh and len(carried) == 0
    # Windows of the model's input at the full plan's finest view (0.5 at 1080p), not the full plan.
    assert all(p.scale == 0.5 and p.x1 - p.x0 <= 640 and p.y1 - p.y0 <= 640 for p in passes), passes
    assert len(passes) < len(schedule.detector.plan(1080, 1920, video=True))
    assert schedule.stats["off_cadence"] == 1 and schedule.detector_frames == 1  # the cadence did not move
    # A camera that moved: nothing on an off-cadence frame (the next frame of the cadence decides).
    moved = np.roll(still, 40, axis=1)
    assert schedule.plan(3, rgb, gating.block_means(noisy(moved, 3)))[0] == []
    # Off (the faces' default): the cadence alone.
    off = ClassSchedule(
        ClassDetector(Letterboxed([]), replace(plates, video_gated_every_frame=False), 1), gate=True, refresh_frames=50
    )
    off.plan(0, rgb, gating.block_means(noisy(still, 1)))
    off.refreshed(Detections.empty())
    assert not off.wants(1) and off.wants(2)


def face_at(*xyxy: float, score: float = 0.9) -> Detections:
    return Detections(np.array([xyxy], np.float32), np.array([score], np.float32), np.array([0], np.int32))


def refreshed_faces(found: Detections | None = None) -> tuple[ClassSchedule, np.ndarray, np.ndarray]:
    """A gated face schedule after its refresh on ``scene()``, which found ``found``: (the
    schedule, a 360p frame for its plans, the still picture). Its next full-plan frame is far
    off: a full-plan frame looks again at everything that differs from the refresh."""
    spec = ClassSpec(scales=(1.0,), video_scales=(1.0,), flip=False, video_full_every=100, tile_size=4096)
    schedule = ClassSchedule(ClassDetector(Boxes([]), spec, 0), gate=True, refresh_frames=50)
    rgb = np.zeros((360, 640, 3), np.uint8)
    still = scene()
    schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))
    schedule.refreshed(Detections.empty() if found is None else found)
    return schedule, rgb, still


def test_a_region_that_changed_once_is_looked_at_once_and_keeps_what_that_look_found():
    # A walker who came in and stopped: changed since the refresh on every frame after, but not
    # since the look that found him. Looked at on every detector frame until the refresh, he cost
    # a parked car's or a stray GOP's whole closer look each time.
    schedule, rgb, still = refreshed_faces()
    came = still.copy()
    came[100:132, 300:332] = 255 - came[100:132, 300:332]
    passes, carried, _ = schedule.plan(1, rgb, gating.block_means(noisy(came, 2)))
    assert passes and not len(carried) and schedule.stats["gated"] == 1  # the first look
    schedule.looked_at(face_at(305, 105, 335, 140))
    for i in range(2, 6):  # he stands still: nothing runs, what the look found stays
        passes, carried, _ = schedule.plan(i, rgb, gating.block_means(noisy(came, 1 + i)))
        assert passes == [] and carried.xyxy.tolist() == [[305, 105, 335, 140]]
        schedule.looked_at(Detections.empty())
    # He moves on: his region changed since the look, so it is looked at again, and his old box
    # is not carried (the look there finds where he is now).
    went = came.copy()
    went[100:132, 332:348] = 255 - went[100:132, 332:348]
    passes, carried, _ = schedule.plan(6, rgb, gating.block_means(noisy(went, 9)))
    assert passes and not len(carried) and schedule.stats["gated"] == 6
    assert any(p.x0 <= 300 and p.x1 >= 348 and p.y0 <= 100 and p.y1 >= 132 for p in passes), passes
    # Compared with the refresh alone (frames planned in batches), every frame looks again.
    batched = ClassSchedule(schedule.detector, gate=True, refresh_frames=50, remember=False)
    batched.plan(0, rgb, gating.block_means(noisy(still, 1)))
    batched.refreshed(Detections.empty())
    assert all(batched.plan(i, rgb, gating.block_means(noisy(came, 1 + i)))[0] for i in range(1, 4))


def test_only_a_look_as_thorough_as_a_full_frames_is_remembered_and_full_frames_look_again():
    class Letterboxed(Boxes):
        fixed_input = 640

    spec = ClassSpec(scales=(1.0,), video_scales=(1.0,), flip=False, video_full_every=3, tile_size=1280, video_zoom=2.0)
    rgb = np.zeros((360, 640, 3), np.uint8)
    still = scene()
    came = still.copy()
    came[200:232, 40:104] = 255 - came[200:232, 40:104]  # a vehicle comes in and parks
    for every_frame, looks_again in ((False, True), (True, False)):
        schedule = ClassSchedule(
            ClassDetector(Letterboxed([]), replace(spec, video_zoom_every_frame=every_frame), 0), gate=True, refresh_frames=50
        )
        schedule.plan(0, rgb, gating.block_means(noisy(still, 1)))
        schedule.refreshed(Detections.empty())
        schedule.plan(1, rgb, gating.block_means(noisy(came, 2)))  # off the full plan: the closer look if every frame
        schedule.looked_at(Detections.empty())
        # Without the closer look on frame 1, the full frame's look is still owed to it.
        assert bool(schedule.plan(2, rgb, gating.block_means(noisy(came, 3)))[0]) == looks_again, every_frame
        schedule.looked_at(Detections.empty())
        # The full plan's frame looks again at what differs from the refresh, closer look and all.
        passes = schedule.plan(3, rgb, gating.block_means(noisy(came, 4)))[0]
        assert any(p.scale == 2.0 for p in passes), (every_frame, passes)


def test_a_look_remembers_what_it_found_where_it_looked_and_a_live_area_is_looked_at_anew():
    schedule, rgb, still = refreshed_faces()
    came = still.copy()
    came[40:72, 40:72] = 255 - came[40:72, 40:72]
    schedule.plan(1, rgb, gating.block_means(noisy(came, 2)))
    # A box past the areas looked at (a window's false positive in the still background) is the
    # refresh's business, not the memory's: remembered, it would stay until its cells change.
    schedule.looked_at(Detections.merge([face_at(40, 40, 70, 70, score=0.5), face_at(500, 20, 540, 60)]))
    assert schedule.memory.xyxy.tolist() == [[40, 40, 70, 70]]
    more = came.copy()
    more[40:72, 100:132] = 255 - more[40:72, 100:132]  # someone joins, beside the first
    passes, carried, _ = schedule.plan(2, rgb, gating.block_means(noisy(more, 3)))
    # Its own cells did not change, but its area did: the area is looked at again, whole, and
    # what that look finds replaces what was remembered there.
    assert not len(carried) and any(p.x0 <= 40 and p.x1 >= 132 for p in passes), passes
    schedule.looked_at(Detections.merge([face_at(41, 40, 71, 70, score=0.7), face_at(105, 45, 130, 70)]))
    assert np.allclose(sorted(schedule.memory.confidence), [0.7, 0.9])
    passes, carried, _ = schedule.plan(3, rgb, gating.block_means(noisy(more, 4)))
    assert passes == [] and len(carried) == 2


def test_where_the_picture_is_back_to_the_refresh_its_boxes_are_carried_alone():
    # A walker stops beside a face the refresh found: the face is looked at again (its second
    # view is remembered). When he has gone, the refresh's picture and boxes are back; the second
    # view beside the refresh's own box would only widen the mask.
    schedule, rgb, still = refreshed_faces(face_at(300, 100, 330, 130))
    came = still.copy()
    came[100:132, 344:376] = 255 - came[100:132, 344:376]
    passes, carried, _ = schedule.plan(1, rgb, gating.block_means(noisy(came, 2)))
    assert not len(carried) and any(p.x0 <= 300 and p.x1 >= 330 for p in passes)  # touched: looked at again
    schedule.looked_at(face_at(302, 101, 333, 133, score=0.8))
    _, carried, _ = schedule.plan(2, rgb, gating.block_means(noisy(came, 3)))
    assert carried.xyxy.tolist() == [[302, 101, 333, 133]]  # he stays: the look's view, settled
    schedule.looked_at(Detections.empty())
    passes, carried, _ = schedule.plan(3, rgb, gating.block_means(noisy(still, 4)))  # he has gone
    assert passes == [] and carried.xyxy.tolist() == [[300, 100, 330, 130]]


def test_a_refresh_box_beside_a_settled_area_is_carried_when_no_look_kept_it():
    # A walker stands just right of a face the refresh found; a shadow's edge between them
    # flickers about the threshold, so the face is touched on some frames and not on others.
    # Dropped where touched and not looked at again (nothing there changes any more), it was
    # bare until the next refresh.
    schedule, rgb, _ = refreshed_faces(face_at(300, 100, 330, 130))
    ref = schedule.reference.copy()
    schedule.looked = ref.copy()

    def frame(soft: float) -> np.ndarray:
        b = ref.copy()
        b[12:17, 50:54] += 60  # the walker
        b[12:17, 48] += soft  # the shadow's edge, about the 6-level threshold
        return b

    for i, soft in enumerate([6.6, 5.4, 6.6, 6.6], start=1):
        passes, carried, _ = schedule.plan(i, rgb, frame(soft))
        covered = any(p.x0 <= 300 and p.x1 >= 330 and p.y0 <= 100 and p.y1 >= 130 for p in passes)
        assert covered or any(box_iou(carried.xyxy, np.array([[300, 100, 330, 130]], np.float32))[:, 0] >= 0.3), (i, soft)
        schedule.looked_at(face_at(302, 101, 333, 133, score=0.8) if passes else Detections.empty())
