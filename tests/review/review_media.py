"""Media for the review tests: clips and photos whose every object is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from media_factory import FACES_PHOTO, load_rgb
from PIL import Image

# Two faces of the sample crowd photo, pasted far apart on a plain background (source boxes).
FACE_CROPS = ((120, 149, 171, 207), (57, 197, 109, 255))


def texture(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A faceless, detailed picture (smooth colour blobs plus fine stripes): masking shows."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fx, fy = rng.uniform(0.01, 0.05, 2)
        img[..., c] = 128 + 60 * np.sin(xx * fx + c) * np.cos(yy * fy) + 40 * np.sin(xx * 0.9 + yy * 0.7)
    return np.clip(img, 0, 255).astype(np.uint8)


def two_faces_photo(path: Path) -> Path:
    """A 480x300 photo with two faces ~100 px across, ~160 px apart."""
    src = load_rgb(FACES_PHOTO)
    canvas = np.full((300, 480, 3), 170, np.uint8)
    for (x1, y1, x2, y2), (ax, ay) in zip(FACE_CROPS, ((40, 60), (300, 60))):
        crop = Image.fromarray(src[y1 - 8 : y2 + 8, x1 - 8 : x2 + 8]).resize(((x2 - x1 + 16) * 2, (y2 - y1 + 16) * 2))
        a = np.array(crop)
        canvas[ay : ay + a.shape[0], ax : ax + a.shape[1]] = a
    Image.fromarray(canvas).save(path, quality=95)
    return path
