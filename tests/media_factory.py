"""Real media made on the fly with PyAV for tests: videos panning over a real photo, with audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FACES_PHOTO = SAMPLES / "faces-maksssksksss110.jpg"
PLATE_PHOTO = SAMPLES / "plate-316b64c0-55bf-4079-a1c0-d93f461a576f.jpg"


def load_rgb(path: Path) -> np.ndarray:
    return np.array(Image.open(path).convert("RGB"))


def make_video(
    path: Path,
    *,
    source: Path | np.ndarray = FACES_PHOTO,
    frames: int = 24,
    size: tuple[int, int] = (320, 240),
    fps: int = 12,
    audio: bool = True,
    codec: str = "libx264",
    vfr_pts: list[int] | None = None,
    rotation: int = 0,
    metadata: dict[str, str] | None = None,
    pan: bool = True,
) -> Path:
    """Write a clip that pans slowly across ``source`` (so faces move), with a sine-wave track.

    ``pan=False`` holds ``source`` still at its own size (it must be ``size``): every frame's
    pixels are then known exactly, and fixed-camera gating keeps detection cheap.

    ``vfr_pts`` gives explicit pts (time base 1/1000) for a variable-frame-rate clip.
    """
    image = load_rgb(source) if isinstance(source, Path) else source
    w, h = size
    scale = max(w / image.shape[1], h / image.shape[0]) * 1.2
    big = np.array(Image.fromarray(image).resize((int(image.shape[1] * scale) + 1, int(image.shape[0] * scale) + 1)))
    max_dx, max_dy = big.shape[1] - w, big.shape[0] - h
    if not pan:
        big, max_dx, max_dy = image, 0, 0
    with av.open(str(path), "w") as container:
        if metadata:
            container.metadata.update(metadata)
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        if codec in ("mpeg2video", "msmpeg4", "mpeg4"):  # constant-rate codecs count in frames
            stream.codec_context.time_base = Fraction(1, fps)
        if vfr_pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        a_stream = None
        if audio:
            a_stream = container.add_stream("aac", rate=44100)
            a_stream.layout = "mono"
        for i in range(frames):
            t = i / max(1, frames - 1)
            x, y = int(max_dx * t), int(max_dy * t / 2)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[y : y + h, x : x + w]), format="rgb24")
            if vfr_pts is not None:
                frame.pts, frame.time_base = vfr_pts[i], Fraction(1, 1000)
            else:
                frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if a_stream is not None:
            duration = frames / fps if vfr_pts is None else (vfr_pts[-1] + 100) / 1000
            samples = int(44100 * duration)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = tone[start : start + 1024][None, :]
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate = 44100
                frame.pts = start
                for packet in a_stream.encode(frame):
                    container.mux(packet)
            for packet in a_stream.encode(None):
                container.mux(packet)
    return path


def make_gradient_video(
    path: Path,
    *,
    container: str | None = None,
    codec: str = "libx264",
    frames: int = 30,
    size_wh: tuple[int, int] = (160, 120),
    audio: str | None = "aac",
    fps: int = 15,
) -> Path:
    """Given a path, write a real small video there with PyAV and return the path.

    The cheap clip of the sniff, CLI and fault tests (``hostile.py`` builds its broken inputs on it);
    ``container`` forces a muxer whatever the suffix. Frames are a moving colour gradient; ``audio`` ("aac", "pcm_s16le" or None) adds a 16 kHz
    mono sine track so that audio handling is exercised too.
    """
    width, height = size_wh
    rate = 16000
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        sound = None
        if audio:
            sound = out.add_stream(audio, rate=rate)
            sound.layout = "mono"
        audio_pts = 0
        xs = np.arange(width, dtype=np.int32)
        ys = np.arange(height, dtype=np.int32)[:, None]
        for i in range(frames):
            image = np.empty((height, width, 3), np.uint8)
            image[:, :, 0] = (xs * 2 + i * 8) % 256
            image[:, :, 1] = (ys * 2 + i * 3) % 256
            image[:, :, 2] = (i * 8) % 256
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
            if sound is not None:
                n = rate // fps
                samples = (np.sin(np.arange(audio_pts, audio_pts + n) * 0.1) * 3000).astype(np.int16)[None, :]
                chunk = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
                chunk.sample_rate, chunk.pts = rate, audio_pts
                audio_pts += n
                out.mux(sound.encode(chunk))
        out.mux(video.encode())
        if sound is not None:
            out.mux(sound.encode())
    return path


def write_frames(path: Path, frames: list[np.ndarray], fps: int = 12) -> Path:
    """An H.264 clip (crf 18, no audio) of these RGB frames, one per tick of 1/fps."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def decode_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def half_visible(box: np.ndarray, width: int, height: int) -> bool:
    """True when at least half of ``box`` (x1, y1, x2, y2) lies inside a width x height frame."""
    x1, y1, x2, y2 = box
    inside = max(0.0, min(x2, width) - max(x1, 0)) * max(0.0, min(y2, height) - max(y1, 0))
    return inside >= 0.5 * (x2 - x1) * (y2 - y1)


def box_cover(regions, box, width: int, height: int) -> float:
    """The largest share of ``box`` (x1, y1, x2, y2, clipped to a width x height frame) that one
    of ``regions`` (Detections: the padded mask regions of a frame) covers; 0 with none."""
    b = np.clip(np.asarray(box, np.float32), 0, [width, height, width, height])
    if not len(regions):
        return 0.0
    x1, y1 = np.maximum(regions.xyxy[:, 0], b[0]), np.maximum(regions.xyxy[:, 1], b[1])
    x2, y2 = np.minimum(regions.xyxy[:, 2], b[2]), np.minimum(regions.xyxy[:, 3], b[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return float(inter.max() / max(1.0, (b[2] - b[0]) * (b[3] - b[1])))


def assert_faces_changed(finder, src: Path, out: Path, *, frames: int, min_boxes: int) -> None:
    """Pixels, not counts: every face ``finder.detect_image`` finds confidently (>= 0.5) in a
    source frame is changed in the same output frame (mean difference over 6 levels)."""
    pairs = list(zip(decode_rgb(src), decode_rgb(out)))
    assert len(pairs) == frames
    checked = 0
    for before, after in pairs:
        faces = finder.detect_image(before)
        for x1, y1, x2, y2 in faces.xyxy[faces.confidence >= 0.5].astype(int):
            region = np.s_[max(0, y1) : y2, max(0, x1) : x2]
            assert np.abs(before[region].astype(np.int16) - after[region]).mean() > 6, (x1, y1, x2, y2)
            checked += 1
    assert checked >= min_boxes


# The shipped 1080p plate photo's plate (both plate graphs find it there).
PLATE_IN_PHOTO = (76, 812, 261, 897)


def plate_sprite(width: int) -> tuple[np.ndarray, np.ndarray]:
    """The shipped photo's plate with a quarter of its width and half its height of car around it,
    scaled to ``width`` px wide (INTER_AREA), and the plate's box in it."""
    import cv2

    photo = load_rgb(PLATE_PHOTO)
    x1, y1, x2, y2 = PLATE_IN_PHOTO
    pw, ph = x2 - x1, y2 - y1
    crop = (x1 - pw // 4, y1 - ph // 2, x2 + pw // 4, y2 + ph // 2)
    scale = width / pw
    rgb = cv2.resize(
        photo[crop[1] : crop[3], crop[0] : crop[2]], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
    )
    box = (np.array(PLATE_IN_PHOTO, np.float32) - [crop[0], crop[1], crop[0], crop[1]]) * scale
    return rgb, box


def motion_blurred(rgb: np.ndarray, vx: float, vy: float) -> np.ndarray:
    """``rgb`` smeared along (vx, vy) over a quarter of one frame's travel (a 1/100 s shutter at 25 fps)."""
    import cv2

    k = max(1, int(round(np.hypot(vx, vy) / 4)))
    kernel = np.zeros((k, k), np.float32)
    if vy == 0:
        kernel[k // 2, :] = 1.0
    elif vx == 0:
        kernel[:, k // 2] = 1.0
    else:
        down = vx * vy > 0
        cv2.line(kernel, (0, 0) if down else (k - 1, 0), (k - 1, k - 1) if down else (0, k - 1), 1.0, 1)
    return cv2.filter2D(rgb, -1, kernel / kernel.sum())


def write_crossing_plate(
    path: Path,
    width: int,
    velocity: tuple[float, float],
    start: tuple[int, int],
    *,
    size: tuple[int, int] = (1920, 1080),
    frames: int = 60,
    fps: int = 25,
    seed: int = 0,
) -> list[np.ndarray]:
    """Write a clip of ``plate_sprite(width)``, motion-blurred, crossing the shipped crowd photo
    (enlarged to ``size``, sensor noise) at ``velocity`` px a frame from ``start`` (the sprite's
    top-left corner on frame 0); return the plate's true box on every frame."""
    import cv2

    rgb, box = plate_sprite(width)
    rgb = motion_blurred(rgb, *velocity)
    sh, sw = rgb.shape[:2]
    w, h = size
    scene = cv2.resize(load_rgb(FACES_PHOTO), (w, h), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    truths, out = [], []
    x, y = float(start[0]), float(start[1])
    for _ in range(frames):
        frame = scene.copy()
        xi, yi = int(round(x)), int(round(y))
        x0, y0, x1, y1 = max(0, xi), max(0, yi), min(w, xi + sw), min(h, yi + sh)
        if x0 < x1 and y0 < y1:
            frame[y0:y1, x0:x1] = rgb[y0 - yi : y1 - yi, x0 - xi : x1 - xi]
        truths.append(box + [xi, yi, xi, yi])
        noisy = frame.astype(np.int16) + rng.normal(0, 2, frame.shape).astype(np.int16)
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
        x, y = x + velocity[0], y + velocity[1]
    write_frames(path, out, fps=fps)
    return truths


def judge_crossing_plate(engine, src: Path, dst: Path, truths: list[np.ndarray]) -> dict:
    """Run ``engine`` on ``src`` (a clip of ``write_crossing_plate``) into ``dst`` and judge it.

    Returns ``found`` (per frame: None where no plate detector ran, else whether its detections
    held a box on the plate at IoU 0.3, any score the tracker sees), ``sightings`` (the frames
    where they did), ``visible`` (frames with at least half of the plate in the frame),
    ``within`` (those from ``track.max_gap_frames`` before the first sighting to as many after the
    last), and ``leaked`` (the visible frames the output leaves readable, ``metrics.box_hidden``).
    """
    from anonymizer.detections import box_iou
    from anonymizer.evaluate import metrics
    from anonymizer.track import window

    found: list[bool | None] = []
    push = window.WindowTracker.push

    def observe(self, frame_found):  # records what the detector found, then tracks as ever
        plates, truth = frame_found.get("plate"), np.asarray(truths[len(found)], np.float32)
        if plates is None:
            found.append(None)
        else:
            found.append(bool(len(plates)) and bool((box_iou(plates.xyxy.reshape(-1, 4), truth[None])[:, 0] > 0.3).any()))
        return push(self, frame_found)

    window.WindowTracker.push = observe
    try:
        engine.process(src, dst)
    finally:
        window.WindowTracker.push = push
    before, after = decode_rgb(src), decode_rgb(dst)
    assert len(before) == len(after) == len(truths)
    height, width = before[0].shape[:2]
    sightings = [i for i, hit in enumerate(found) if hit]
    reach = engine.profile.track.max_gap_frames
    visible = [i for i, box in enumerate(truths) if half_visible(box, width, height)]
    within = [i for i in visible if sightings and sightings[0] - reach <= i <= sightings[-1] + reach]
    limits = [width, height, width, height]
    leaked = [
        i for i in visible if not metrics.box_hidden(before[i], after[i], np.clip(truths[i], 0, limits), ellipse=False).hidden
    ]
    return {"found": found, "sightings": sightings, "visible": visible, "within": within, "leaked": leaked}
