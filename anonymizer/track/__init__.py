"""Tracking: link detections over time and add the boxes a recently seen object implies."""
