"""Masking: turn detections into padded regions and destroy the pixels inside them."""
