"""Sidecar files: an operator's manual regions and exclusions for one source, or for a folder.

``<source name>.masks.yaml`` beside the source (``clip.mp4.masks.yaml``) applies to that source;
``.masks.yaml`` in a folder applies to every source directly in it. Both are read when present,
the folder's first. The format (docs/review.md)::

    regions:                      # masked in addition to every detection
      - box: [x1, y1, x2, y2]     # source pixels
        start: 2.5                # seconds from the first frame, or "0:02.5"; start_frame: 60
        end: "0:04"               # inclusive; end_frame: 96. Both optional (whole clip)
        method: fill              # fill (default), blur or pixelate
      - polygon: [[x, y], [x, y], [x, y]]
      - keys:                     # a moving box: linear between key boxes, active from first to last
          - {frame: 0, box: [x1, y1, x2, y2]}
          - {frame: 48, box: [x1, y1, x2, y2]}
    exclusions:                   # detections lying wholly inside are not masked
      - box: [x1, y1, x2, y2]
        classes: [face]           # default: face and plate
        start_frame: 10
        end_frame: 50

Validated like a profile: every error of every file at once, naming file, key and allowed values.
Whether the masks fit the media (frame size, duration) is checked when the job starts
(``ManualMasks.check_fit``).
"""

from __future__ import annotations

import hashlib
import re
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from anonymizer.config import Checker
from anonymizer.detections import CLASS_IDS
from anonymizer.mask.regions import (
    Bound,
    Exclusion,
    KeyBox,
    ManualMasks,
    ManualMasksError,
    ManualRegion,
    Span,
    box_points,
)

SIDECAR_SUFFIX = ".masks.yaml"
FOLDER_SIDECAR = ".masks.yaml"
METHODS = ("fill", "blur", "pixelate")
MAX_SIDECAR_BYTES = 4 * 1024 * 1024  # thousands of regions; more is not a hand-made file
_TIMESTAMP = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$")


def sidecar_for(src: Path) -> Path:
    """The sidecar file of one source: ``<name>.masks.yaml`` beside it."""
    return src.with_name(src.name + SIDECAR_SUFFIX)


def is_sidecar_name(name: str) -> bool:
    return name.lower().endswith(SIDECAR_SUFFIX)


def sidecars_of(src: Path) -> list[Path]:
    """The sidecar files that apply to ``src`` and exist: the folder's, then its own."""
    return [p for p in (src.parent / FOLDER_SIDECAR, sidecar_for(src)) if p.is_file()]


def load_sidecars(paths: list[Path], labels: list[str] | None = None) -> ManualMasks:
    """Read and validate sidecar files into one ManualMasks. Raise ManualMasksError listing
    every problem of every file.

    Args:
        labels: how each file is named in error messages (default: its path). The daemon passes
            neutral labels unless the profile opts in to file names, since a sidecar's name
            carries its source's.
    """
    labels = labels or [str(p) for p in paths]
    errors: list[str] = []
    regions: list[ManualRegion] = []
    exclusions: list[Exclusion] = []
    hashes: list[str] = []
    documents: list[tuple[str, str]] = []
    for path, label in zip(paths, labels):
        try:
            with open(path, "rb") as fh:
                blob = fh.read(MAX_SIDECAR_BYTES + 1)
        except OSError as exc:
            errors.append(f"{label}: cannot read: {exc.strerror or type(exc).__name__}")
            continue
        if len(blob) > MAX_SIDECAR_BYTES:
            errors.append(f"{label}: larger than {MAX_SIDECAR_BYTES} bytes")
            continue
        hashes.append(hashlib.sha256(blob).hexdigest())
        try:
            data = yaml.safe_load(blob.decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            errors.append(f"{label}: not valid YAML: {' '.join(str(exc).split())}")
            continue
        c = Checker(label)
        masks = masks_from_dict(data, c)
        errors.extend(c.errors)
        regions.extend(masks.regions)
        exclusions.extend(masks.exclusions)
        documents.append((label, blob.decode("utf-8")))
    if errors:
        raise ManualMasksError("\n".join(errors))
    return ManualMasks(tuple(regions), tuple(exclusions), tuple(hashes), tuple(documents))


def parse_sidecar_text(text: str, label: str = "<sidecar>") -> ManualMasks:
    """Validate a sidecar given as text (tests, ``review reject --masks``)."""
    c = Checker(label)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManualMasksError(f"{label}: not valid YAML: {' '.join(str(exc).split())}") from exc
    masks = masks_from_dict(data, c)
    if c.errors:
        raise ManualMasksError("\n".join(c.errors))
    return ManualMasks(masks.regions, masks.exclusions, (hashlib.sha256(text.encode()).hexdigest(),), ((label, text),))


def masks_from_documents(documents: list[tuple[str, str]] | list[list[str]], sha256: list[str]) -> ManualMasks:
    """The masks of a job sent by content (label, text per file), validated again; raise
    ManualMasksError when they do not validate or hash to ``sha256`` (the job's own key)."""
    masks = ManualMasks()
    for label, text in documents:
        masks = masks + parse_sidecar_text(text, label)
    if list(masks.sha256) != list(sha256):
        raise ManualMasksError("the job's sidecar masks arrived different from what the coordinator read")
    return masks


def masks_from_dict(data: Any, c: Checker) -> ManualMasks:
    """Given parsed YAML, return the masks; every problem goes to ``c.errors``."""
    top = c.section(data if data is not None else {}, "", {"regions", "exclusions"})
    regions = [r for i, item in enumerate(_list(c, top, "regions")) if (r := _region(c, item, f"regions[{i}]")) is not None]
    exclusions = [
        e for i, item in enumerate(_list(c, top, "exclusions")) if (e := _exclusion(c, item, f"exclusions[{i}]")) is not None
    ]
    return ManualMasks(tuple(regions), tuple(exclusions))


def _list(c: Checker, top: dict[str, Any], key: str) -> list[Any]:
    value = top.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        c.error(key, f"expected a list, got {type(value).__name__}")
        return []
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _box(c: Checker, value: Any, path: str) -> tuple[float, float, float, float] | None:
    if not (isinstance(value, list) and len(value) == 4 and all(_number(v) for v in value)):
        c.error(path, f"expected [x1, y1, x2, y2] in source pixels, got {value!r}")
        return None
    x1, y1, x2, y2 = (float(v) for v in value)
    if not (x2 > x1 and y2 > y1):
        c.error(path, f"expected x2 > x1 and y2 > y1, got {value!r}")
        return None
    return x1, y1, x2, y2


def _polygon(c: Checker, value: Any, path: str) -> tuple[tuple[float, float], ...] | None:
    ok = isinstance(value, list) and len(value) >= 3 and all(
        isinstance(p, list) and len(p) == 2 and all(_number(v) for v in p) for p in value
    )
    if not ok:
        c.error(path, f"expected a list of at least 3 [x, y] points in source pixels, got {value!r}")
        return None
    return tuple((float(x), float(y)) for x, y in value)


def parse_time(value: Any) -> float:
    """Seconds from a number or a 'm:ss(.fff)' / 'h:mm:ss(.fff)' timestamp. Raise ValueError."""
    if _number(value):
        if value < 0:
            raise ValueError(f"expected seconds >= 0, got {value!r}")
        return float(value)
    match = _TIMESTAMP.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected seconds (2.5) or a timestamp ('0:02.5', '1:02:03.250'), got {value!r}")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def _bound(c: Checker, d: dict[str, Any], path: str, which: str) -> Bound | None:
    seconds_key, frame_key = which, f"{which}_frame"
    if seconds_key in d and frame_key in d:
        c.error(f"{path}.{which}", f"give one of {seconds_key}, {frame_key}, not both")
        return None
    if frame_key in d:
        value = d[frame_key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            c.error(f"{path}.{frame_key}", f"expected a frame number >= 0, got {value!r}")
            return None
        return Bound("frame", float(value))
    if seconds_key in d:
        try:
            return Bound("s", parse_time(d[seconds_key]))
        except ValueError as exc:
            c.error(f"{path}.{seconds_key}", str(exc))
    return None


def _span(c: Checker, d: dict[str, Any], path: str) -> Span:
    span = Span(_bound(c, d, path, "start"), _bound(c, d, path, "end"))
    s, e = span.start, span.end
    if s is not None and e is not None and s.unit == e.unit and e.value < s.value:
        c.error(f"{path}.end", f"ends ({e.value:g}) before it starts ({s.value:g})")
    return span


def _region(c: Checker, item: Any, path: str) -> ManualRegion | None:
    allowed = {"box", "polygon", "keys", "start", "end", "start_frame", "end_frame", "method"}
    d = c.section(item, path, allowed)
    if not isinstance(item, dict):
        return None
    n_errors = len(c.errors)
    shapes = [k for k in ("box", "polygon", "keys") if k in d]
    if len(shapes) != 1:
        c.error(path, f"give exactly one of: box, polygon, keys (got {', '.join(shapes) or 'none'})")
    method = c.get(d, path, "method", "fill", str, choices=METHODS)
    span = _span(c, d, path)
    points: tuple[tuple[float, float], ...] = ()
    keys: tuple[KeyBox, ...] = ()
    if "box" in d and (box := _box(c, d["box"], f"{path}.box")) is not None:
        points = tuple(map(tuple, box_points(box).tolist()))  # type: ignore[arg-type]
    elif "polygon" in d and (poly := _polygon(c, d["polygon"], f"{path}.polygon")) is not None:
        points = poly
    elif "keys" in d:
        if span.timed:
            c.error(path, "a moving region's keys set its time range: remove start/end")
        keys = _keys(c, d["keys"], f"{path}.keys")
    if len(c.errors) > n_errors:
        return None
    return ManualRegion(f"{c.source}: {path}", span, points, keys, method)


def _keys(c: Checker, value: Any, path: str) -> tuple[KeyBox, ...]:
    if not isinstance(value, list) or len(value) < 2:
        c.error(path, f"expected a list of at least 2 key boxes ({{frame: N, box: [...]}} or {{time: s, box: [...]}}), got {value!r}")
        return ()
    keys = []
    for i, item in enumerate(value):
        p = f"{path}[{i}]"
        d = c.section(item, p, {"frame", "time", "box"})
        if not isinstance(item, dict):
            continue
        at = None
        if ("frame" in d) == ("time" in d):
            c.error(p, "give one of: frame, time")
        elif "frame" in d:
            if isinstance(d["frame"], int) and not isinstance(d["frame"], bool) and d["frame"] >= 0:
                at = Bound("frame", float(d["frame"]))
            else:
                c.error(f"{p}.frame", f"expected a frame number >= 0, got {d['frame']!r}")
        else:
            try:
                at = Bound("s", parse_time(d["time"]))
            except ValueError as exc:
                c.error(f"{p}.time", str(exc))
        box = _box(c, d.get("box"), f"{p}.box")
        if at is not None and box is not None:
            keys.append(KeyBox(at, box))
    if len(keys) == len(value):
        if len({k.at.unit for k in keys}) > 1:
            c.error(path, "key boxes must all use frame or all use time")
        elif any(b.at.value <= a.at.value for a, b in pairwise(keys)):
            c.error(path, "key boxes must be in increasing time order")
    return tuple(keys)


def _exclusion(c: Checker, item: Any, path: str) -> Exclusion | None:
    d = c.section(item, path, {"box", "classes", "start", "end", "start_frame", "end_frame"})
    if not isinstance(item, dict):
        return None
    n_errors = len(c.errors)
    box = _box(c, d.get("box"), f"{path}.box")
    classes = d.get("classes", list(CLASS_IDS))
    if not (isinstance(classes, list) and classes and all(x in CLASS_IDS for x in classes)):
        c.error(f"{path}.classes", f"expected a list of: {', '.join(CLASS_IDS)}, got {classes!r}")
    span = _span(c, d, path)
    if len(c.errors) > n_errors or box is None:
        return None
    return Exclusion(f"{c.source}: {path}", box, span, tuple(CLASS_IDS[x] for x in classes))
