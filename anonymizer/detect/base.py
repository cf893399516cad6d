"""The detector contract and the identity of the weights behind it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """What an audit record says about a model: never the weights themselves.

    ``sha256`` is always the shipped (source) file's; an int8 graph derived from it on this host
    (anonymizer.detect.int8) adds its own SHA-256 and the recipe that made it.
    """

    id: str
    sha256: str
    license: str
    path: str
    precision: str = "full"
    graph_sha256: str | None = None
    recipe: str | None = None
    # The 640x384 copy of a YOLO export's graph that wide video frames go through
    # (anonymizer.detect.yolo_shape), when one is loaded.
    shaped_graph_sha256: str | None = None
    # Which passes this graph runs when a class runs two (``detail_precision``,
    # ``video_detail_precision``): "detail" or "base"; None = all.
    passes: str | None = None

    def as_audit(self) -> dict[str, str]:
        derived = {"graph_sha256": self.graph_sha256, "recipe": self.recipe} if self.graph_sha256 else {}
        if self.shaped_graph_sha256:
            derived["shaped_graph_sha256"] = self.shaped_graph_sha256
        if self.passes:
            derived["passes"] = self.passes
        return {"id": self.id, "sha256": self.sha256, "license": self.license, "precision": self.precision, **derived}


class RawDetector(Protocol):
    """One network at one input: ``(rgb uint8 HxWx3) -> (xyxy (n,4) float32, scores (n,))``.

    Pixel coordinates are those of the image it was given; tiling and scaling happen around it.
    """

    info: ModelInfo
    fixed_input: int | None  # side of a fixed square input (platedet: 640), None when dynamic

    def __call__(self, rgb: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]: ...


@lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a weights file, cached by (path, size, mtime) so a daemon hashes it once."""
    st = Path(path).stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)
