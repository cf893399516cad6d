"""Detectors: (RGB image) -> Detections in source-pixel coordinates. They never open media files."""
