"""Read an evaluation set: a folder with ``images/`` and ``labels.jsonl``.

One JSON object per line, one line per image::

    {"image": "images/a.jpg", "width": 1024, "height": 744,
     "boxes": [[x1, y1, x2, y2], ...],          # objects that must be hidden
     "ignore": [[x1, y1, x2, y2], ...],         # optional: too small/invalid; neither counted nor penalised
     "class": "face",                           # optional: class of every box in this line
     "box_class": ["face", "plate", ...],       # optional: per box; "face"/"plate", or a subgroup name
     "complete": false}                         # optional: false = not every object is labelled

Coordinates are pixels of the image as stored (no EXIF rotation applied), x2/y2 exclusive.
A ``box_class`` entry that is neither ``face`` nor ``plate`` (e.g. ``with_mask``) is kept as a
subgroup name for the report; the box's class then comes from ``class``, or from the set's
folder name (``faces-*`` / ``plates-*``), or from the command line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anonymizer.detections import CLASS_IDS
from anonymizer.errors import ConfigError

LABELS_FILE = "labels.jsonl"
HALVES = ("tune", "confirm", "all")


@dataclass(frozen=True)
class LabeledImage:
    """The ground truth of one image.

    Attributes:
        image: path relative to the set folder, as written in ``labels.jsonl``.
        width, height: pixel size declared by the label line.
        boxes: float32 (n, 4) xyxy of objects that must be hidden.
        class_id: int32 (n,) FACE or PLATE per box.
        group: per-box subgroup name (``box_class`` values that are not a class), or "".
        ignore: float32 (m, 4) xyxy of regions neither counted nor penalised.
        ignore_class_id: int32 (m,) class of each ignore box.
        complete: False where some objects of the image are not labelled (precision is not measured).
    """

    image: str
    width: int
    height: int
    boxes: np.ndarray
    class_id: np.ndarray
    group: tuple[str, ...]
    ignore: np.ndarray
    ignore_class_id: np.ndarray
    complete: bool = True
    extra: dict = field(default_factory=dict, compare=False)


def infer_set_class(set_dir: Path) -> str | None:
    """Given a set folder, return 'face' or 'plate' from its name ('faces-wider'), or None."""
    name = set_dir.resolve().name.lower()
    for cls in CLASS_IDS:
        if name.startswith(cls):
            return cls
    return None


def _boxes(value: object, where: str, key: str, *, drop_empty: bool = False) -> np.ndarray:
    if value is None:
        return np.zeros((0, 4), np.float32)
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: '{key}' must be a list of [x1, y1, x2, y2]: {exc}") from exc
    if arr.size == 0:
        return np.zeros((0, 4), np.float32)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ConfigError(f"{where}: '{key}' must be a list of [x1, y1, x2, y2], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{where}: '{key}' has a non-finite coordinate")
    empty = (arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1])
    if drop_empty:
        # Annotators mark some invalid faces with zero-size boxes; they cover no pixel, so drop them.
        return arr[~empty]
    if np.any(empty):
        raise ConfigError(f"{where}: '{key}' has a box with x2 <= x1 or y2 <= y1")
    return arr


def parse_label_line(data: object, where: str, default_class: str | None) -> LabeledImage:
    """Given one decoded JSON line, return a LabeledImage. Raise ConfigError naming the line."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
    for key in ("image", "width", "height", "boxes"):
        if key not in data:
            raise ConfigError(f"{where}: missing required key '{key}'")
    image = data["image"]
    if not isinstance(image, str) or not image or Path(image).is_absolute() or ".." in Path(image).parts:
        raise ConfigError(f"{where}: 'image' must be a relative path inside the set, got {image!r}")
    width, height = data["width"], data["height"]
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise ConfigError(f"{where}: 'width' and 'height' must be positive integers")
    boxes = _boxes(data["boxes"], where, "boxes")
    ignore = _boxes(data.get("ignore"), where, "ignore", drop_empty=True)

    line_class = data.get("class", default_class)
    if line_class is not None and line_class not in CLASS_IDS:
        raise ConfigError(f"{where}: 'class' {line_class!r} is not one of: {', '.join(CLASS_IDS)}")
    raw_groups = data.get("box_class")
    if raw_groups is not None and (not isinstance(raw_groups, list) or len(raw_groups) != len(boxes)):
        raise ConfigError(f"{where}: 'box_class' must be a list with one entry per box ({len(boxes)})")
    class_ids, groups = [], []
    for i in range(len(boxes)):
        g = str(raw_groups[i]) if raw_groups is not None else ""
        cls = g if g in CLASS_IDS else line_class
        if cls is None:
            raise ConfigError(
                f"{where}: box {i} has no class: add \"class\": \"face\" or \"plate\" to the line, "
                "name the set folder faces-* or plates-*, or pass --class"
            )
        class_ids.append(CLASS_IDS[cls])
        groups.append("" if g in CLASS_IDS else g)
    # Ignore boxes take the line's class; without one they are neutral for every class.
    ignore_cls = CLASS_IDS[line_class] if line_class is not None else -1
    complete = data.get("complete", True)
    if not isinstance(complete, bool):
        raise ConfigError(f"{where}: 'complete' must be true or false")
    known = {"image", "width", "height", "boxes", "ignore", "class", "box_class", "complete"}
    return LabeledImage(
        image=image,
        width=width,
        height=height,
        boxes=boxes,
        class_id=np.asarray(class_ids, np.int32),
        group=tuple(groups),
        ignore=ignore,
        ignore_class_id=np.full(len(ignore), ignore_cls, np.int32),
        complete=complete,
        extra={k: v for k, v in data.items() if k not in known},
    )


def read_label_set(set_dir: str | Path, *, default_class: str | None = None) -> list[LabeledImage]:
    """Given a set folder, return its labelled images in file order.

    Args:
        set_dir: folder holding ``labels.jsonl`` and the images it names.
        default_class: 'face' or 'plate' for lines without a class; None infers it from the
            folder's name where possible.

    Raise ConfigError if the file is missing or a line is malformed (the message names the line).
    """
    set_dir = Path(set_dir)
    path = set_dir / LABELS_FILE
    if default_class is None:
        default_class = infer_set_class(set_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read labels: {exc.strerror or exc}") from exc
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not valid JSON: {exc.msg}") from exc
        items.append(parse_label_line(data, where, default_class))
    if not items:
        raise ConfigError(f"{path}: no labelled images")
    return items


def half_of(image: str) -> str:
    """Given an image's path relative to its set (the label line's ``image``), return its half of
    the fixed split: "confirm" when the first hex digit of the SHA-1 of the path (UTF-8) is 8-f,
    else "tune". Rules are chosen on the tune half and confirmed on the other (../shared/eval/README.md);
    a fixed split, so every session and every bench uses the same one."""
    return "confirm" if hashlib.sha1(image.encode("utf-8")).hexdigest()[0] in "89abcdef" else "tune"


def select_half(labels: list[LabeledImage], half: str) -> list[LabeledImage]:
    """The labelled images of one half ("tune" / "confirm"), in file order; "all" keeps every one."""
    if half not in HALVES:
        raise ConfigError(f"half must be one of {', '.join(HALVES)}, got {half!r}")
    return labels if half == "all" else [label for label in labels if half_of(label.image) == half]
