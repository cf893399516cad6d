"""Run the real engine over a labelled set and score every image.

Each image is decoded with the product's own photo reader and goes through the same calls as
``anonymizer process`` (``Engine.detect_image`` -> ``Engine.regions`` -> ``Engine.masker.apply``),
only without encoding the result to a file: the masked array is compared with the decoded input.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from anonymizer.detections import CLASS_NAMES, FACE, Detections
from anonymizer.errors import ConfigError, MediaError
from anonymizer.evaluate import metrics
from anonymizer.evaluate.labels import LabeledImage, read_label_set, select_half
from anonymizer.media.image import read_photo


@dataclass(frozen=True)
class BoxOutcome:
    """One labelled box: was it detected (IoU >= 0.5) and was it hidden in the output."""

    image: str
    box: tuple[float, float, float, float]
    class_name: str
    group: str
    size_px: float
    bucket: str
    detected: bool
    retained: float
    changed: float
    hidden: bool


@dataclass(frozen=True)
class ImageOutcome:
    """Per-image totals: detections, false positives (None where labels are incomplete), collateral."""

    image: str
    megapixels: float
    seconds: float
    detections: dict[str, int]
    false_positives: dict[str, int | None]
    collateral_changed: int
    collateral_total: int
    # (class, box, score) of confident detections touching no label: label gaps for a reviewer
    unlabelled: tuple[tuple[str, tuple[float, float, float, float], float], ...] = ()


@dataclass
class SetResult:
    """Everything measured on one set with one profile."""

    set_name: str
    profile_name: str
    profile_sha256: str
    models: list[dict[str, str]]
    classes: tuple[str, ...]
    half: str = "all"
    boxes: list[BoxOutcome] = field(default_factory=list)
    images: list[ImageOutcome] = field(default_factory=list)


class Anonymizer(Protocol):
    """What the runner needs from an engine: detections and the masked image for one array."""

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, Detections]: ...


def engine_anonymizer(engine: Any) -> Anonymizer:
    """Wrap an ``anonymizer.pipeline.Engine``: return (masked copy, raw unpadded detections).

    These are the calls ``Engine.process`` makes for a photo, in the same order.
    """

    def run(rgb: np.ndarray) -> tuple[np.ndarray, Detections]:
        raw = engine.detect_image(rgb)
        regions = engine.regions(raw, (rgb.shape[1], rgb.shape[0]))
        return engine.masker.apply(rgb.copy(), regions), raw

    return run


def score_image(
    label: LabeledImage, rgb: np.ndarray, masked: np.ndarray, dets: Detections, seconds: float
) -> tuple[list[BoxOutcome], ImageOutcome]:
    """Score one image given its input, its anonymized output and the detections behind it."""
    boxes: list[BoxOutcome] = []
    detected = np.zeros(len(label.boxes), bool)
    n_dets: dict[str, int] = {}
    false_pos: dict[str, int | None] = {}
    unlabelled: list[tuple[str, tuple[float, float, float, float], float]] = []
    for cid, name in CLASS_NAMES.items():
        sel_gt = label.class_id == cid
        sel_det = dets.class_id == cid
        sel_ign = (label.ignore_class_id == cid) | (label.ignore_class_id < 0)
        match = metrics.match_boxes(label.boxes[sel_gt], dets.xyxy[sel_det], dets.confidence[sel_det], label.ignore[sel_ign])
        detected[sel_gt] = match.gt_matched
        known = np.concatenate([label.boxes[sel_gt], label.ignore[sel_ign]])
        off = metrics.possibly_unlabelled(dets.xyxy[sel_det], dets.confidence[sel_det], known)
        unlabelled += [
            (name, tuple(round(float(v), 1) for v in box), round(float(score), 3))  # type: ignore[misc]
            for box, score in zip(dets.xyxy[sel_det][off], dets.confidence[sel_det][off])
        ]
        n_dets[name] = int(sel_det.sum())
        false_pos[name] = match.false_positives if label.complete else None
    sizes = metrics.box_size_px(label.boxes)
    buckets = metrics.size_bucket(sizes)
    for i, box in enumerate(label.boxes):
        verdict = metrics.box_hidden(rgb, masked, box, ellipse=bool(label.class_id[i] == FACE))
        boxes.append(
            BoxOutcome(
                image=label.image,
                box=tuple(round(float(v), 1) for v in box),  # type: ignore[arg-type]
                class_name=CLASS_NAMES[int(label.class_id[i])],
                group=label.group[i],
                size_px=float(sizes[i]),
                bucket=metrics.SIZE_BUCKETS[int(buckets[i])],
                detected=bool(detected[i]),
                retained=verdict.retained,
                changed=verdict.changed,
                hidden=verdict.hidden,
            )
        )
    protected = np.concatenate([label.boxes, label.ignore]) if len(label.ignore) else label.boxes
    changed, total = metrics.collateral_counts(rgb, masked, protected)
    height, width = rgb.shape[:2]
    return boxes, ImageOutcome(
        label.image, width * height / 1e6, seconds, n_dets, false_pos, changed, total, tuple(unlabelled)
    )


def load_rgb(path: Path, label: LabeledImage, limits: Any) -> np.ndarray:
    """Decode one set image with the product's photo reader; check it against its label line."""

    try:
        rgb = read_photo(path, limits).rgb
    except (OSError, MediaError) as exc:
        raise ConfigError(f"{path}: cannot evaluate: {exc}") from exc
    if rgb.shape[:2] != (label.height, label.width):
        raise ConfigError(
            f"{path}: decoded size {rgb.shape[1]}x{rgb.shape[0]} differs from the label's "
            f"{label.width}x{label.height} (EXIF rotation? labels use the image as stored)"
        )
    return rgb


def evaluate_set(
    anonymize: Anonymizer,
    set_dir: str | Path,
    *,
    limits: Any,
    profile_name: str = "",
    profile_sha256: str = "",
    models: list[dict[str, str]] | None = None,
    default_class: str | None = None,
    limit: int | None = None,
    half: str = "all",
    progress: Callable[[int, int], None] | None = None,
) -> SetResult:
    """Run ``anonymize`` on every labelled image of a set and return the scores.

    Args:
        anonymize: (rgb) -> (masked rgb, detections), e.g. ``engine_anonymizer(engine)``.
        set_dir: folder with ``labels.jsonl`` and ``images/``.
        limits: a ``LimitsSpec`` for the photo reader.
        default_class: class of boxes whose line names none ('face' / 'plate').
        limit: evaluate only the first N images (in file order, of the half).
        half: "tune" or "confirm" half of the fixed split (``labels.half_of``), or "all".
        progress: called with (done, total) after each image.

    Raise ConfigError for a malformed set or an unreadable image.
    """
    set_dir = Path(set_dir)
    labels = select_half(read_label_set(set_dir, default_class=default_class), half)
    if limit is not None:
        labels = labels[:limit]
    classes = tuple(sorted({CLASS_NAMES[int(c)] for li in labels for c in li.class_id}))
    result = SetResult(set_dir.resolve().name, profile_name, profile_sha256, models or [], classes, half=half)
    for done, label in enumerate(labels, start=1):
        rgb = load_rgb(set_dir / label.image, label, limits)
        start = time.perf_counter()
        masked, dets = anonymize(rgb)
        seconds = time.perf_counter() - start
        boxes, image = score_image(label, rgb, masked, dets, seconds)
        result.boxes.extend(boxes)
        result.images.append(image)
        if progress:
            progress(done, len(labels))
    return result
