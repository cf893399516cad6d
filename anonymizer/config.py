"""Profiles: YAML validated once, at load, into frozen dataclasses.

Every error found in a file is collected and raised together as one ``ConfigError`` whose lines
name the file, the key and what was allowed, e.g.::

    profiles/cctv.yaml: at 'mask.method': 'blurr' is not one of: blur, pixelate, fill

Stages never see raw dicts: they receive the ``Profile`` (or one of its parts).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from anonymizer.errors import ConfigError

BUILTIN_PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"


# --------------------------------------------------------------------------- frozen profile


@dataclass(frozen=True)
class CascadeSpec:
    """Photos: where the expensive passes run (anonymizer.detect.cascade). Off: every pass everywhere."""

    enabled: bool = False
    # The cheap pass: the unmirrored passes at these scales run on the whole photo (plates: 2x
    # tiles are where a 1280 px photo is seen at full resolution; the 1x pass shrinks it to 640).
    always_scales: tuple[float, ...] = (1.0,)
    # ... and their mirrored passes too (a turned face can score nothing unmirrored).
    always_mirrored: bool = True
    # The cheap pass keeps candidates down to this score as cues.
    cue_threshold: float = 0.05
    # A weak cue (scoring below ``weak_below``) gets every other pass around it: large turned
    # faces too are found only by an upscaled or mirrored pass. A confident one gets the upscaled
    # passes only when they show it at most ``upscale_below_px`` across (0 = every cue): a small
    # face in a crowd has smaller neighbours.
    weak_below: float = 0.2
    upscale_below_px: float = 64.0
    # Each cue's region grows by this fraction of its size plus these source pixels per side.
    context: float = 0.25
    context_px: float = 32.0
    cell_px: int = 32  # regions are unions of cells of this many source px
    crop_context_px: int = 64  # scaled pixels of context around each crop (the network's view)
    full_above: float = 0.6  # crops covering more of a pass than this: the whole pass runs


@dataclass(frozen=True)
class ClassSpec:
    """How one object class (faces or plates) is detected and masked."""

    enabled: bool = True
    model: str = "centerface"
    threshold: float = 0.12
    # Video: weaker detections, down to this score, are masked when they join a track that also
    # has a detection at or above ``threshold`` (hysteresis: a face in a blurred frame scores low
    # but is the same face). None = off.
    track_threshold: float | None = 0.05
    scales: tuple[float, ...] = (1.0, 2.0, 3.0)
    video_scales: tuple[float, ...] | None = (1.0,)  # video frames; None = same as ``scales``
    tile_size: int = 2048
    tile_overlap: float = 0.2
    flip: bool = True
    every_n_frames: int = 1
    margin: float = 0.3
    # Video: tracked boxes lag and jitter by a few pixels from frame to frame, and a leak in any
    # one frame is a leak; never below ``margin`` (see pad_and_clip); None = same as ``margin``.
    # Faces: ``margin_px`` now covers that jitter, so video takes the photo fraction.
    video_margin: float | None = 0.3
    # Pixels added per side on top of the fraction: a detector's box is off by a few pixels
    # whatever the object's size (its output stride), which a fraction of a 10 px face cannot cover.
    margin_px: float = 4.0
    min_margin_px: int = 4
    min_size_px: float = 0.0
    # Video cadence (anonymizer.detect.schedule): every detector frame gets one cheap dense pass
    # over the whole frame, at most this many px on its longer side (0 = at full size) ...
    video_dense_side: int = 640
    # ... and every n-th detector frame the full plan (every video scale, tile and mirror); the
    # tracker covers the frames between (its lead and trail reach at least this far).
    video_full_every: int = 4
    # The mirrored passes in video. Off for faces: the mirror finds turned faces in single photos,
    # but in video the same faces turn, move and get found unmirrored (0 leaks either way on the
    # eval clips, bench/eval_video.py), and the mirrored full-resolution pass was a fifth of the
    # detector's time. Photos keep ``flip``.
    video_flip: bool = False
    cascade: CascadeSpec = field(default_factory=CascadeSpec)


@dataclass(frozen=True)
class DetectSpec:
    device: str = "auto"
    threads: int = 0
    # Fixed cameras (anonymizer.detect.gating): detect only where pixels changed since the last
    # full refresh, which runs at least every ``gating_refresh_frames`` frames and on camera motion.
    gating: bool = True
    gating_refresh_frames: int = 50
    faces: ClassSpec = field(default_factory=ClassSpec)
    plates: ClassSpec = field(
        default_factory=lambda: ClassSpec(
            model="platedet",
            threshold=0.05,
            track_threshold=0.02,
            scales=(0.5, 1.0, 2.0, 3.0),
            video_scales=(0.5, 1.0),
            tile_size=1280,
            flip=False,
            every_n_frames=2,
            margin=0.25,
            video_margin=None,
            video_full_every=3,
            cascade=CascadeSpec(always_scales=(0.5, 1.0, 2.0), always_mirrored=False, cue_threshold=0.1, upscale_below_px=0.0, context=0.0, context_px=16.0),
        )
    )


@dataclass(frozen=True)
class TrackSpec:
    iou_match: float = 0.1
    max_gap_frames: int = 15
    lead_frames: int = 5
    trail_frames: int = 8
    # A track of weak candidates alone is masked once it holds this many of them (0 = never): a
    # small masked face can score 0.06-0.1 in every frame of a clip and never reach the threshold.
    confirm_sightings: int = 12
    # ... if it is no larger than this (the median of its boxes' longer sides, in px; 0 = any
    # size), or than twice the median confident track around it.
    confirm_max_px: int = 64


@dataclass(frozen=True)
class MaskSpec:
    method: str = "blur"
    shape: str = "ellipse"
    strength: float = 1.0
    color: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True)
class OutputSpec:
    video_codec: str = "libx264"
    crf: int = 20
    preset: str = "veryfast"
    audio: str = "copy"
    image_quality: int = 92
    keep_orientation_tag: bool = False


@dataclass(frozen=True)
class LimitsSpec:
    max_pixels: int = 40_000_000
    max_duration_s: float = 6 * 3600.0
    max_streams: int = 16
    max_file_bytes: int = 64 * 1024**3
    max_frames: int = 2_000_000


@dataclass(frozen=True)
class RetentionSpec:
    source: str = "keep"
    after_s: float = 0.0
    move_to: str | None = None


@dataclass(frozen=True)
class PrivacySpec:
    log_file_names: bool = False


@dataclass(frozen=True)
class Profile:
    name: str = "default"
    detect: DetectSpec = field(default_factory=DetectSpec)
    track: TrackSpec = field(default_factory=TrackSpec)
    mask: MaskSpec = field(default_factory=MaskSpec)
    output: OutputSpec = field(default_factory=OutputSpec)
    limits: LimitsSpec = field(default_factory=LimitsSpec)
    retention: RetentionSpec = field(default_factory=RetentionSpec)
    privacy: PrivacySpec = field(default_factory=PrivacySpec)
    source_path: str | None = field(default=None, compare=False)
    # 'required': the daemon holds each finished output for review (anonymizer.review.hold)
    # instead of publishing it; 'none': outputs are published at once.
    review: str = "none"

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


# --------------------------------------------------------------------------- validation toolkit


class Checker:
    """Collects errors while reading a mapping; shared by the profile and the daemon config."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{self.source}: at '{path}': {message}")

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ConfigError("\n".join(self.errors))

    def section(self, data: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.error(path or "<top>", f"expected a mapping, got {type(data).__name__}")
            return {}
        unknown = sorted(set(map(str, data)) - allowed)
        for key in unknown:
            self.error(_join(path, key), f"unknown key; allowed keys: {', '.join(sorted(allowed))}")
        return data

    def get(
        self,
        data: dict[str, Any],
        path: str,
        key: str,
        default: Any,
        kind: type | tuple[type, ...],
        *,
        choices: tuple[Any, ...] | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        convert: Callable[[Any], Any] | None = None,
    ) -> Any:
        full = _join(path, key)
        if key not in data or data[key] is None and default is None:
            return default
        value = data[key]
        if convert is not None:
            try:
                value = convert(value)
            except (TypeError, ValueError) as exc:
                self.error(full, str(exc))
                return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a profile that says `crf: true` is a mistake.
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self.error(full, f"expected {names}, got {value!r}")
            return default
        if choices is not None and value not in choices:
            self.error(full, f"{value!r} is not one of: {', '.join(map(str, choices))}")
            return default
        if minimum is not None and value < minimum:
            self.error(full, f"{value!r} is below the minimum {minimum}")
            return default
        if maximum is not None and value > maximum:
            self.error(full, f"{value!r} is above the maximum {maximum}")
            return default
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def parse_duration(value: Any) -> float:
    """Given '30s', '24h', '30d', '0' or a number, return seconds. Raise ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 24h or 30d, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 30s, 24h or 30d, got {value!r}")
    number, unit = match.groups()
    return float(number) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def _float_list(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0.1 <= v <= 8 for v in value
    ):
        raise ValueError(f"expected a non-empty list of numbers between 0.1 and 8, got {value!r}")
    return tuple(float(v) for v in value)


def _color(value: Any) -> tuple[int, int, int]:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in value)):
        raise ValueError(f"expected [R, G, B] with values 0-255, got {value!r}")
    return tuple(value)  # type: ignore[return-value]


# --------------------------------------------------------------------------- profile loading

MODEL_CHOICES = ("centerface", "platedet")
DEVICES = ("auto", "cpu", "cuda")
VIDEO_CODECS = ("libx264", "libx265", "h264_nvenc", "hevc_nvenc", "libvpx-vp9", "mpeg4")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def _nullable_float(c: Checker, d: dict[str, Any], path: str, key: str, default: float | None, **bounds: float) -> float | None:
    """A number, or None when the profile writes ``null`` (whatever the default)."""
    if key in d and d[key] is None:
        return None
    value = c.get(d, path, key, default, (int, float), **bounds)
    return None if value is None else float(value)


def _track_threshold(c: Checker, d: dict[str, Any], path: str, default: ClassSpec) -> float | None:
    value = _nullable_float(c, d, path, "track_threshold", default.track_threshold, minimum=0.01, maximum=0.99)
    if value is None:
        return None
    threshold = d.get("threshold", default.threshold)
    if not isinstance(threshold, (int, float)):
        return float(value)  # the threshold's own error is reported
    if "track_threshold" not in d:
        return float(min(value, threshold))  # a profile that lowers threshold lowers the default too
    if value > threshold:
        c.error(_join(path, "track_threshold"), f"{value!r} is above threshold ({threshold}); it must be lower (or null for off)")
        return default.track_threshold
    return float(value)


def _cascade_spec(c: Checker, data: Any, path: str, default: CascadeSpec) -> CascadeSpec:
    d = c.section(data, path, set(CascadeSpec.__dataclass_fields__))

    def number(key: str, **bounds: float) -> float:
        return float(c.get(d, path, key, getattr(default, key), (int, float), **bounds))

    return CascadeSpec(
        enabled=c.get(d, path, "enabled", default.enabled, bool),
        always_scales=c.get(d, path, "always_scales", default.always_scales, tuple, convert=_float_list),
        always_mirrored=c.get(d, path, "always_mirrored", default.always_mirrored, bool),
        cue_threshold=number("cue_threshold", minimum=0.01, maximum=0.99),
        upscale_below_px=number("upscale_below_px", minimum=0, maximum=10000),
        weak_below=number("weak_below", minimum=0.01, maximum=1),
        context=number("context", minimum=0, maximum=10),
        context_px=number("context_px", minimum=0, maximum=2000),
        cell_px=c.get(d, path, "cell_px", default.cell_px, int, minimum=8, maximum=1024),
        crop_context_px=c.get(d, path, "crop_context_px", default.crop_context_px, int, minimum=0, maximum=1024),
        full_above=number("full_above", minimum=0, maximum=1),
    )


def _class_spec(c: Checker, data: Any, path: str, default: ClassSpec, base_dir: Path | None) -> ClassSpec:
    d = c.section(data, path, set(ClassSpec.__dataclass_fields__))
    model = c.get(d, path, "model", default.model, str)
    if model not in MODEL_CHOICES:
        # Any other value is a path to an operator-provided ultralytics weights file.
        candidate = Path(model).expanduser()
        if not candidate.is_absolute() and base_dir is not None:
            candidate = base_dir / candidate
        if candidate.suffix not in (".pt", ".onnx"):
            c.error(_join(path, "model"), f"{model!r} is not one of: {', '.join(MODEL_CHOICES)}, or a path to a .pt/.onnx file")
        elif not candidate.is_file():
            c.error(_join(path, "model"), f"weights file {str(candidate)!r} does not exist")
        else:
            model = str(candidate)
    return ClassSpec(
        enabled=c.get(d, path, "enabled", default.enabled, bool),
        model=model,
        threshold=float(c.get(d, path, "threshold", default.threshold, (int, float), minimum=0.01, maximum=0.99)),
        track_threshold=_track_threshold(c, d, path, default),
        scales=c.get(d, path, "scales", default.scales, tuple, convert=_float_list),
        video_scales=c.get(d, path, "video_scales", default.video_scales, tuple, convert=_float_list),
        tile_size=c.get(d, path, "tile_size", default.tile_size, int, minimum=160, maximum=8192),
        tile_overlap=float(c.get(d, path, "tile_overlap", default.tile_overlap, (int, float), minimum=0, maximum=0.5)),
        flip=c.get(d, path, "flip", default.flip, bool),
        every_n_frames=c.get(d, path, "every_n_frames", default.every_n_frames, int, minimum=1, maximum=30),
        margin=float(c.get(d, path, "margin", default.margin, (int, float), minimum=0, maximum=2)),
        video_margin=_nullable_float(c, d, path, "video_margin", default.video_margin, minimum=0, maximum=2),
        margin_px=float(c.get(d, path, "margin_px", default.margin_px, (int, float), minimum=0, maximum=200)),
        min_margin_px=c.get(d, path, "min_margin_px", default.min_margin_px, int, minimum=0, maximum=200),
        min_size_px=float(c.get(d, path, "min_size_px", default.min_size_px, (int, float), minimum=0)),
        video_dense_side=c.get(d, path, "video_dense_side", default.video_dense_side, int, minimum=0, maximum=8192),
        video_full_every=c.get(d, path, "video_full_every", default.video_full_every, int, minimum=1, maximum=30),
        video_flip=c.get(d, path, "video_flip", default.video_flip, bool),
        cascade=_cascade_spec(c, d.get("cascade"), _join(path, "cascade"), default.cascade),
    )


def profile_from_dict(data: Any, source: str = "<profile>", base_dir: Path | None = None) -> Profile:
    """Given parsed YAML, return a frozen Profile. Raise ConfigError listing every problem."""
    c = Checker(source)
    top = c.section(data, "", {"name", "detect", "track", "mask", "output", "limits", "retention", "privacy", "review"})
    dflt = Profile()

    det = c.section(top.get("detect"), "detect", {"device", "threads", "gating", "gating_refresh_frames", "faces", "plates"})
    detect = DetectSpec(
        device=c.get(det, "detect", "device", dflt.detect.device, str, choices=DEVICES),
        threads=c.get(det, "detect", "threads", dflt.detect.threads, int, minimum=0, maximum=256),
        gating=c.get(det, "detect", "gating", dflt.detect.gating, bool),
        gating_refresh_frames=c.get(
            det, "detect", "gating_refresh_frames", dflt.detect.gating_refresh_frames, int, minimum=1, maximum=100000
        ),
        faces=_class_spec(c, det.get("faces"), "detect.faces", dflt.detect.faces, base_dir),
        plates=_class_spec(c, det.get("plates"), "detect.plates", dflt.detect.plates, base_dir),
    )

    trk = c.section(top.get("track"), "track", set(TrackSpec.__dataclass_fields__))
    track = TrackSpec(
        iou_match=float(c.get(trk, "track", "iou_match", dflt.track.iou_match, (int, float), minimum=0.01, maximum=0.9)),
        max_gap_frames=c.get(trk, "track", "max_gap_frames", dflt.track.max_gap_frames, int, minimum=0, maximum=300),
        lead_frames=c.get(trk, "track", "lead_frames", dflt.track.lead_frames, int, minimum=0, maximum=300),
        trail_frames=c.get(trk, "track", "trail_frames", dflt.track.trail_frames, int, minimum=0, maximum=300),
        confirm_sightings=c.get(trk, "track", "confirm_sightings", dflt.track.confirm_sightings, int, minimum=0, maximum=10000),
        confirm_max_px=c.get(trk, "track", "confirm_max_px", dflt.track.confirm_max_px, int, minimum=0, maximum=100000),
    )

    msk = c.section(top.get("mask"), "mask", set(MaskSpec.__dataclass_fields__))
    mask = MaskSpec(
        method=c.get(msk, "mask", "method", dflt.mask.method, str, choices=("blur", "pixelate", "fill")),
        shape=c.get(msk, "mask", "shape", dflt.mask.shape, str, choices=("box", "ellipse")),
        strength=float(c.get(msk, "mask", "strength", dflt.mask.strength, (int, float), minimum=0.5, maximum=4)),
        color=c.get(msk, "mask", "color", dflt.mask.color, tuple, convert=_color),
    )

    out = c.section(top.get("output"), "output", set(OutputSpec.__dataclass_fields__))
    output = OutputSpec(
        video_codec=c.get(out, "output", "video_codec", dflt.output.video_codec, str, choices=VIDEO_CODECS),
        crf=c.get(out, "output", "crf", dflt.output.crf, int, minimum=0, maximum=51),
        preset=c.get(out, "output", "preset", dflt.output.preset, str, choices=PRESETS),
        audio=c.get(out, "output", "audio", dflt.output.audio, str, choices=("copy", "drop")),
        image_quality=c.get(out, "output", "image_quality", dflt.output.image_quality, int, minimum=50, maximum=100),
        keep_orientation_tag=c.get(out, "output", "keep_orientation_tag", dflt.output.keep_orientation_tag, bool),
    )

    lim = c.section(top.get("limits"), "limits", set(LimitsSpec.__dataclass_fields__))
    limits = LimitsSpec(
        max_pixels=c.get(lim, "limits", "max_pixels", dflt.limits.max_pixels, int, minimum=1),
        max_duration_s=float(
            c.get(lim, "limits", "max_duration_s", dflt.limits.max_duration_s, float, convert=parse_duration, minimum=1)
        ),
        max_streams=c.get(lim, "limits", "max_streams", dflt.limits.max_streams, int, minimum=1),
        max_file_bytes=c.get(lim, "limits", "max_file_bytes", dflt.limits.max_file_bytes, int, minimum=1),
        max_frames=c.get(lim, "limits", "max_frames", dflt.limits.max_frames, int, minimum=1),
    )

    ret = c.section(top.get("retention"), "retention", {"source", "after", "move_to"})
    source = c.get(ret, "retention", "source", dflt.retention.source, str, choices=("keep", "delete", "move"))
    move_to = c.get(ret, "retention", "move_to", None, str)
    if source == "move" and not move_to:
        c.error("retention.move_to", "required when retention.source is 'move'")
    retention = RetentionSpec(
        source=source,
        after_s=float(c.get(ret, "retention", "after", 0.0, float, convert=parse_duration, minimum=0)),
        move_to=move_to,
    )

    prv = c.section(top.get("privacy"), "privacy", {"log_file_names"})
    privacy = PrivacySpec(log_file_names=c.get(prv, "privacy", "log_file_names", False, bool))

    name = c.get(top, "", "name", dflt.name, str)
    review = c.get(top, "", "review", dflt.review, str, choices=("none", "required"))
    if not detect.faces.enabled and not detect.plates.enabled:
        c.error("detect", "at least one of faces, plates must be enabled")
    c.raise_if_errors()
    return Profile(name, detect, track, mask, output, limits, retention, privacy, source_path=c.source, review=review)


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
