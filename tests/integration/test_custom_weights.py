"""A profile may name any Ultralytics YOLO weights file; it is loaded from disk, never fetched."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
from media_factory import FACES_PHOTO, load_rgb

from anonymizer.config import profile_from_dict


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """An untrained YOLOv8n built from the architecture file ultralytics ships (no download)."""
    os.environ["YOLO_OFFLINE"] = "1"
    pytest.importorskip(
        "ultralytics", reason="ultralytics is the optional 'yolo' extra (./scripts/install.sh --yolo; scripts/test.sh adds it)"
    )
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("weights") / "tiny-face.pt"
    YOLO("yolov8n.yaml").save(str(path))
    return path


def test_operator_weights_load_offline_and_run(tiny_weights, tmp_path, monkeypatch):
    from anonymizer.pipeline import Engine

    def no_network(*args, **kwargs):
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    profile = profile_from_dict(
        {"detect": {"device": "cpu", "faces": {"model": str(tiny_weights), "scales": [1.0], "tile_size": 640},
                    "plates": {"enabled": False}}},
        "custom.yaml",
    )
    engine = Engine(profile)
    assert engine.models[0]["id"] == "ultralytics:tiny-face.pt"
    assert len(engine.models[0]["sha256"]) == 64
    masked, regions = engine.anonymize_image(load_rgb(FACES_PHOTO))
    assert masked.shape == load_rgb(FACES_PHOTO).shape and masked.dtype == np.uint8
    assert regions.xyxy.shape[1] == 4  # an untrained model may find anything; the path must run
