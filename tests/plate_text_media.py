"""A hand-made still scene and a plate's characters appearing in it, for the plates' video text
cue (``detect.plate_text.video``): tests/unit/test_video_text.py and
tests/integration/test_video_text_samples.py."""

from __future__ import annotations

import cv2
import numpy as np

W, H = 640, 360
PLATE_BOX = (300, 220, 420, 252)


def text_model_present() -> bool:
    """Whether the PP-OCRv4 text detector's file (the ``rapidocr-onnxruntime`` wheel) is here."""
    try:
        from anonymizer.detect.registry import builtin_weights

        return builtin_weights("pp-ocrv4-det")[0].is_file()
    except Exception:
        return False


def scene() -> np.ndarray:
    """A still street-like scene without any text: gradients and a few flat shapes."""
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([60 + x * 100 / W, 80 + y * 80 / H, 90 + (x + y) * 50 / (W + H)], -1).astype(np.uint8)
    cv2.rectangle(img, (40, 200), (200, 330), (120, 110, 100), -1)
    cv2.rectangle(img, (450, 60), (600, 150), (70, 90, 60), -1)
    return img


def with_plate_text(img: np.ndarray) -> np.ndarray:
    """Light characters on a dark strip at ``PLATE_BOX``: a plate's text, without the plate's frame
    or colours (the plate model does not see it; the text detector does)."""
    img = img.copy()
    cv2.rectangle(img, PLATE_BOX[:2], PLATE_BOX[2:], (40, 40, 40), -1)
    cv2.putText(img, "KX 4821", (306, 245), cv2.FONT_HERSHEY_SIMPLEX, 0.75, (235, 235, 235), 2, cv2.LINE_AA)
    return img
