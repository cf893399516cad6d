"""The photo cascade on hand-made pictures: it never returns fewer boxes than the full plan where
its rule asks for a pass, and it skips the passes its rule says are not needed.

The raw detector here is test data, not a mock of the product: it finds white squares in whatever
crop it is given and scores them by their size in that crop (a 4 px square is a weak cue at 1x and
a detection at 2x), so upscaled passes find what the cheap pass only hints at, as CenterFace does.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from anonymizer.config import CascadeSpec, ClassSpec, load_profile, profile_from_dict
from anonymizer.detect import cascade as module
from anonymizer.detect.multiscale import ClassDetector, Pass
from anonymizer.detections import box_iou
from anonymizer.errors import ConfigError


class SquareFinder:
    """White squares (pixels > 200, not touching the crop's border) scored side / 40 px in the input."""

    fixed_input = None

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        self.calls.append(rgb.shape[:2])
        white = (rgb[:, :, 0] > 200).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(white, connectivity=8)
        boxes, scores = [], []
        h, w = white.shape
        for x, y, bw, bh, _ in stats[1:count]:
            if x == 0 or y == 0 or x + bw == w or y + bh == h:
                continue
            score = min(0.99, max(bw, bh) / 40)
            if score >= threshold:
                boxes.append([x, y, x + bw, y + bh])
                scores.append(score)
        return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32)


class FixedSquareFinder(SquareFinder):
    """The same, for a model with a fixed input (the plan tiles it, the cascade picks tiles)."""

    fixed_input = 640


FACES = ClassSpec(threshold=0.12, scales=(1.0, 2.0, 3.0), tile_size=1024, flip=True)
RULE = CascadeSpec(enabled=True, always_mirrored=False, cue_threshold=0.05, weak_below=0.3, upscale_below_px=96, context=1.0, context_px=16, full_above=0.9)


def picture(squares: list[tuple[int, int, int]], size: tuple[int, int] = (480, 640)) -> np.ndarray:
    rgb = np.zeros((*size, 3), np.uint8)
    for x, y, side in squares:
        rgb[y : y + side, x : x + side] = 255
    return rgb


def full_plan_boxes(detector: ClassDetector, rgb: np.ndarray) -> dict[tuple[float, bool], np.ndarray]:
    """Every box of every pass of the full plan, by (scale, mirrored), in source pixels."""
    out: dict[tuple[float, bool], list[np.ndarray]] = {}
    for scale, flipped, xyxy, _ in detector.detect_passes([rgb])[0]:
        out.setdefault((scale, flipped), []).append(xyxy)
    return {k: np.concatenate(v) for k, v in out.items()}


def needed_cells(rule: CascadeSpec, rgb: np.ndarray, cheap: tuple[np.ndarray, np.ndarray], scale: float, flipped: bool) -> np.ndarray:
    xyxy, conf = cheap
    cues = module.Cues(xyxy[conf >= rule.cue_threshold], conf[conf >= rule.cue_threshold]).for_pass(rule, scale)
    return module.cue_mask(cues, rgb.shape[0], rgb.shape[1], rule)


def test_cascade_finds_every_box_the_full_plan_finds_where_its_rule_asks_for_a_pass():
    # A cluster of 4 px squares (weak cues at 1x, found at 2x and 3x), a lone 3 px square, a 30 px one.
    rgb = picture([(100, 100, 4), (130, 110, 4), (160, 96, 4), (400, 300, 3), (500, 60, 30)])
    detector = ClassDetector(SquareFinder(), FACES, 0)
    full = full_plan_boxes(detector, rgb)
    passes, calls = module.cascade_passes(detector, RULE, rgb)
    ran: dict[tuple[float, bool], list[np.ndarray]] = {}
    for scale, flipped, xyxy, _ in passes:
        ran.setdefault((scale, flipped), []).append(xyxy)
    cheap = detector.detect_passes([rgb], plans=[[Pass(1.0, 0, 0, 640, 480)]], threshold=RULE.cue_threshold)[0][0][2:]
    checked = 0
    for (scale, flipped), boxes in full.items():
        cells = needed_cells(RULE, rgb, cheap, scale, flipped)
        for box in boxes:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            if (scale, flipped) != (1.0, False) and not cells[int(cy // RULE.cell_px), int(cx // RULE.cell_px)]:
                continue
            # The same pass, run by the cascade, returned the same box.
            same = np.concatenate(ran.get((scale, flipped), [np.zeros((0, 4), np.float32)]))
            assert len(same) and box_iou(box[None], same).max() > 0.99, (scale, flipped, box)
            checked += 1
    assert checked >= 7  # the cluster at 2x and 3x, each mirrored too, and the large square at 1x
    found = detector.merge_passes(passes)
    assert calls < len(detector.plan(480, 640))
    # The 4 px cluster is only found by the upscaled passes, and the cascade ran them there.
    assert sum(1 for b in found.xyxy if b[0] >= 95 and b[2] <= 170 and b[1] >= 90 and b[3] <= 120) == 3


def test_cascade_returns_what_the_full_plan_returns_when_everything_is_cued():
    rgb = picture([(x, y, 4) for x in range(40, 620, 60) for y in range(40, 460, 60)])
    detector = ClassDetector(SquareFinder(), FACES, 0)
    expected = detector(rgb)
    found, _ = module.detect_cascade(detector, RULE, rgb)
    assert len(found) == len(expected)
    assert box_iou(expected.xyxy, found.xyxy).max(axis=1).min() > 0.99


def test_a_picture_without_cues_runs_only_the_cheap_pass():
    raw = SquareFinder()
    detector = ClassDetector(raw, FACES, 0)
    found, calls = module.detect_cascade(detector, RULE, picture([]))
    assert len(found) == 0 and calls == 1 and raw.calls == [(480, 640)]
    # The full plan would have run 1x, 2x and 3x (tiled), each mirrored too.
    assert len(detector.plan(480, 640)) > 6
    # With always_mirrored the cheap pass is the 1x pass and its mirror image, and nothing else.
    raw.calls.clear()
    _, calls = module.detect_cascade(detector, replace(RULE, always_mirrored=True), picture([]))
    assert calls == 2 and raw.calls == [(480, 640), (480, 640)]


def test_upscaled_passes_run_only_on_crops_around_small_cues():
    raw = SquareFinder()
    detector = ClassDetector(raw, FACES, 0)
    rgb = picture([(100, 100, 4), (500, 60, 60)])  # one small cue, one large face found at 1x
    module.detect_cascade(detector, RULE, rgb)
    upscaled = [hw for hw in raw.calls[1:] if hw[0] * hw[1] > 480 * 640]
    assert not upscaled  # no whole 2x / 3x picture, only crops
    crops = raw.calls[1:]
    assert crops and sum(h * w for h, w in crops) < 0.2 * sum((480 * s) * (640 * s) * 2 for s in (1, 2, 3))


def test_crops_start_on_the_stride_grid_and_stay_inside_the_scaled_image():
    grid = np.zeros((15, 20), bool)
    grid[3:5, 17:20] = True
    for p in module.crop_passes(grid, 480, 640, 3.0, True, RULE, 1024):
        assert p.x0 % module.STRIDE == 0 and p.y0 % module.STRIDE == 0
        assert 0 <= p.x0 < p.x1 <= 1920 and 0 <= p.y0 < p.y1 <= 1440 and p.flipped


def test_fitted_crop_tiles_cover_what_the_fixed_ones_cover_with_fewer_pixels():
    grid = np.zeros((15, 20), bool)
    grid[1:14, 1:19] = True  # nearly the whole photo cued: a crop of about 1,800 x 1,300 px at 3x
    fixed = module.crop_passes(grid, 480, 640, 3.0, False, RULE, 1024)
    fitted = module.crop_passes(grid, 480, 640, 3.0, False, RULE, 1024, True)
    assert len(fitted) == len(fixed) > 1

    def covered(passes):
        mask = np.zeros((1440, 1920), bool)
        for p in passes:
            assert p.x1 - p.x0 < 1024 + module.STRIDE and p.y1 - p.y0 < 1024 + module.STRIDE
            assert p.x0 % module.STRIDE == 0 and p.y0 % module.STRIDE == 0
            mask[p.y0 : p.y1, p.x0 : p.x1] = True
        return mask

    assert (covered(fitted) >= covered(fixed)).all()
    area = lambda passes: sum((p.x1 - p.x0) * (p.y1 - p.y0) for p in passes)  # noqa: E731
    assert area(fitted) < 0.9 * area(fixed)


@pytest.mark.parametrize("fit", [False, True])
def test_a_crop_at_an_edge_off_the_stride_grid_is_covered_to_its_end(fit):
    # 1344 x 1008 at 3x is 4032 x 3024, 16 px over a multiple of 32: the last tile of each side,
    # moved back onto the grid, used to stop that far short of the crop's end (the photo's edge).
    grid = np.zeros((32, 42), bool)
    grid[2:, 2:] = True  # cued to the bottom-right corner
    rule = replace(RULE, crop_context_px=0)
    crops = module.crop_passes(grid, 1008, 1344, 3.0, False, rule, 1024, fit)
    assert len(crops) > 4
    covered = np.zeros((3024, 4032), bool)
    for p in crops:
        covered[p.y0 : p.y1, p.x0 : p.x1] = True
    assert covered[6 * 32 :, 6 * 32 :].all()  # every cued cell at 3x, to the last pixel


def test_fixed_input_models_run_the_plans_own_tiles_that_hold_a_cue():
    spec = ClassSpec(threshold=0.05, scales=(0.5, 1.0, 2.0, 3.0), tile_size=640, flip=False)
    rule = CascadeSpec(enabled=True, cue_threshold=0.01, upscale_below_px=0, context=0, context_px=16)
    raw = FixedSquareFinder()
    detector = ClassDetector(raw, spec, 1)
    rgb = picture([(60, 60, 12)])
    plan = detector.plan(480, 640)
    cheap, rest = module.split_plan(plan, 1.0)
    cues = detector.detect_passes([rgb], plans=[cheap], threshold=rule.cue_threshold)[0][0]
    chosen = module.plan_expensive(detector, rule, 480, 640, rest, module.Cues(cues[2], cues[3]))
    assert set(chosen) <= set(plan)  # exactly the plan's passes, never a crop of a different size
    assert any(p.scale == 0.5 for p in chosen)  # zoom-out runs when anything was cued
    upscaled = [p for p in chosen if p.scale > 1]
    assert upscaled and len(upscaled) < len([p for p in rest if p.scale > 1])
    assert all(p.x0 / p.scale <= 76 and p.y0 / p.scale <= 76 for p in upscaled)  # tiles over the square
    # Nothing cued: only the cheap pass.
    assert module.plan_expensive(detector, rule, 480, 640, rest, module.Cues(np.zeros((0, 4)), np.zeros(0))) == []


def test_the_cascade_is_a_validated_profile_setting():
    profile = profile_from_dict({"detect": {"faces": {"cascade": {"enabled": True, "cue_threshold": 0.04}}}})
    assert profile.detect.faces.cascade.enabled and profile.detect.faces.cascade.cue_threshold == 0.04
    # The plates keep their own cascade defaults.
    assert profile.detect.plates.cascade == load_profile(None).detect.plates.cascade
    with pytest.raises(ConfigError) as err:
        profile_from_dict({"detect": {"faces": {"cascade": {"enabled": "yes", "cue_threshold": 2, "speed": 1}}}}, "x.yaml")
    text = str(err.value)
    assert "x.yaml: at 'detect.faces.cascade.enabled': expected bool" in text
    assert "at 'detect.faces.cascade.cue_threshold': 2 is above the maximum 0.99" in text
    assert "at 'detect.faces.cascade.speed': unknown key; allowed keys: always_mirrored, always_scales, cell_px" in text


def test_a_large_confident_face_asks_for_no_upscaled_or_mirrored_pass():
    raw = SquareFinder()
    detector = ClassDetector(raw, FACES, 0)
    rule = CascadeSpec(enabled=True, always_mirrored=False, cue_threshold=0.05, upscale_below_px=96, weak_below=0.5)
    found, calls = module.detect_cascade(detector, rule, picture([(300, 200, 60)]))  # scores 0.99 at 1x
    assert calls == 1 and len(found) == 1
    # A weak one (a 6 px square, 0.15) gets both, around it.
    found, calls = module.detect_cascade(detector, rule, picture([(300, 200, 6)]))
    assert calls > 1 and all(h * w < 480 * 640 for h, w in raw.calls[-(calls - 1):])


def test_always_scales_make_the_cheap_pass_and_fall_back_to_a_planned_scale():
    assert module.cheap_scales((0.5, 1.0, 2.0, 3.0), (1.0, 2.0)) == (1.0, 2.0)
    assert module.cheap_scales((2.0, 3.0), (1.0,)) == (2.0,)
    plan = ClassDetector(FixedSquareFinder(), ClassSpec(scales=(0.5, 1.0, 2.0, 3.0), tile_size=640, flip=False), 1).plan(480, 640)
    cheap, rest = module.split_plan(plan, (1.0, 2.0))
    assert {p.scale for p in cheap} == {1.0, 2.0} and {p.scale for p in rest} == {0.5, 3.0}
    assert sorted(cheap + rest) == sorted(plan)


def test_the_cascade_reports_progress_for_every_inference_call():
    detector = ClassDetector(SquareFinder(), FACES, 0)
    seen: list[tuple[int, int]] = []
    _, calls = module.detect_cascade(detector, RULE, picture([(100, 100, 4)]), progress=lambda d, t: seen.append((d, t)))
    assert calls > 1 and seen[-1] == (calls, calls)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never goes backwards


@pytest.mark.parametrize("cls", ["faces", "plates"])
def test_the_default_cue_is_weaker_than_a_detection(cls):
    # A cue at or above the class's threshold sends the closer look only where the cheap pass has
    # already detected something: an object only the closer look finds is never looked for.
    spec = getattr(load_profile(None).detect, cls)
    assert spec.cascade.cue_threshold <= spec.threshold / 2


class FaintSquareFinder(FixedSquareFinder):
    """Squares scored side / 60 px: a 2 px square is 0.033 at 1x and 0.067 in a 3x tile (4 px)."""

    def __call__(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        xyxy, scores = super().__call__(rgb, threshold * 1.5)
        return xyxy, scores / 1.5


def test_a_candidate_too_weak_to_be_a_plate_gets_the_closer_look_that_finds_it():
    # The cheap pass scores it under the plates' 0.05 threshold (no detection), a 3x tile above.
    spec = replace(load_profile(None).detect.plates, scales=(1.0, 3.0), tile_size=640)
    detector = ClassDetector(FaintSquareFinder(), spec, 1)
    rgb = picture([(300, 200, 2)])
    default = spec.cascade
    found, _ = module.detect_cascade(detector, default, rgb)
    assert len(found) == 1 and found.confidence[0] >= spec.threshold
    assert box_iou(found.xyxy, np.array([[300, 200, 302, 202]], np.float32)).max() > 0.3
    # With a cue above the threshold (the plates' 0.1 before), the 3x tile never ran: the plate was lost.
    lost, calls = module.detect_cascade(detector, replace(default, cue_threshold=0.1), rgb)
    assert len(lost) == 0 and calls == 1


def test_mirrored_weak_only_keeps_mirrored_upscaled_passes_for_weak_cues():
    # A confident small square (20 px: 0.5) and a weak one (6 px: 0.15); both small enough upscaled.
    cues = module.Cues(np.array([[100, 100, 120, 120], [400, 300, 406, 306]], np.float32), np.array([0.5, 0.15], np.float32))
    rule = replace(RULE, weak_below=0.3, upscale_below_px=96)
    assert len(cues.for_pass(rule, 2.0, True)) == 2 and len(cues.for_pass(rule, 2.0, False)) == 2
    narrowed = replace(rule, mirrored_weak_only=True)
    assert cues.for_pass(narrowed, 2.0, False).confidence.tolist() == pytest.approx([0.5, 0.15])
    assert cues.for_pass(narrowed, 2.0, True).confidence.tolist() == pytest.approx([0.15])
    # On the real passes: the mirrored upscaled crops cover the weak square, not the confident one.
    detector = ClassDetector(SquareFinder(), FACES, 0)
    rgb = picture([(100, 100, 20), (400, 300, 6)])
    plan = detector.plan(480, 640)
    cheap, rest = module.split_plan(plan, 1.0)
    chosen = module.plan_expensive(detector, narrowed, 480, 640, rest, cues)
    mirrored = [p for p in chosen if p.flipped and p.scale > 1]
    assert mirrored and all(p.x0 / p.scale > 200 for p in mirrored)
    assert any(not p.flipped and p.scale > 1 and p.x0 / p.scale < 200 for p in chosen)
    assert detector.merge_passes(module.cascade_passes(detector, narrowed, rgb)[0]).xyxy.shape[0] == 2


def test_upscale_max_px_skips_upscaled_passes_that_show_a_cue_too_large():
    # A weak 10 px cue (0.25): 20 px at 2x, 30 px at 3x.
    cues = module.Cues(np.array([[100, 100, 110, 110]], np.float32), np.array([0.25], np.float32))
    rule = replace(RULE, weak_below=0.3)
    assert len(cues.for_pass(rule, 3.0)) == 1
    capped = replace(rule, upscale_max_px=25.0)
    assert len(cues.for_pass(capped, 2.0)) == 1 and len(cues.for_pass(capped, 3.0)) == 0
    assert len(cues.for_pass(capped, 3.0, True)) == 0
    # The cheap scale's mirrored pass is not an upscaled one: the cap leaves it alone.
    assert len(cues.for_pass(capped, 1.0, True)) == 1


def test_mirrored_no_context_crops_mirrored_passes_to_the_cues_own_cells():
    # A lone weak 6 px square: the unmirrored upscaled crops take the context around it, the
    # mirrored ones only its own cells (plus the crop's context for the network), so they are smaller.
    detector = ClassDetector(SquareFinder(), FACES, 0)
    rule = replace(RULE, context=1.0, context_px=64, crop_context_px=32, mirrored_no_context=False)
    cues = module.Cues(np.array([[300, 200, 306, 206]], np.float32), np.array([0.15], np.float32))
    _, rest = module.split_plan(detector.plan(480, 640), 1.0)

    def area(r: CascadeSpec, flipped: bool) -> int:
        chosen = module.plan_expensive(detector, r, 480, 640, rest, cues)
        return sum((p.x1 - p.x0) * (p.y1 - p.y0) for p in chosen if p.flipped == flipped and p.scale > 1)

    tight = replace(rule, mirrored_no_context=True)
    assert area(tight, False) == area(rule, False)
    assert 0 < area(tight, True) < area(rule, True)
    # And the square is still found by the mirrored upscaled passes that remain.
    passes, _ = module.cascade_passes(detector, tight, picture([(300, 200, 6)]))
    assert any(f and s > 1 and len(xyxy) for s, f, xyxy, _ in passes)


def test_the_default_keeps_every_closer_look_whole():
    # docs/recall.md, "Cheaper closer looks": mirrored_no_context cuts faces at a crop's edge (a cut
    # box beside the whole one) and saved no real time on crowds; the size cap lost two large turned
    # faces on the confirm half. Both stay options, off.
    profile = load_profile(None)
    assert not profile.detect.faces.cascade.mirrored_no_context and profile.detect.faces.cascade.upscale_max_px == 0
    assert not profile.detect.plates.cascade.mirrored_no_context and profile.detect.plates.cascade.upscale_max_px == 0
