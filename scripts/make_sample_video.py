#!/usr/bin/env python3
"""Rebuild samples/clip-walking-and-pause.mp4 from the CC-BY GIF it is made of (see samples/SOURCES.md).

    .venv/bin/python scripts/make_sample_video.py ../shared/samples/face-demographics-walking-and-pause.gif

The GIF's frames are re-encoded as H.264 (yuv420p, CRF 23) at their own timing, and a generated
audio track is added: a quiet 440 Hz tone, AAC mono. The tone is there only so that a newcomer sees
the audio kept through anonymization; it is not a recording of the scene (the GIF has no sound).
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# "clip-" sorts before the sample photos: the daemon takes settled files in path order, so the demo
# shows the video path (tracking, audio kept) first instead of after the slow plate photos.
OUT = Path(__file__).resolve().parent.parent / "samples" / "clip-walking-and-pause.mp4"
AUDIO_RATE = 16_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gif", type=Path, help="face-demographics-walking-and-pause.gif (intel-iot-devkit/sample-videos)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    with av.open(str(args.gif)) as src:
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
        stream = src.streams.video[0]
        rate = stream.average_rate or Fraction(25, 2)
    height, width = frames[0].shape[:2]
    duration = len(frames) / float(rate)

    with av.open(str(args.out), "w", format="mp4") as dst:
        dst.metadata.clear()
        video = dst.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "23", "preset": "slow"}
        audio = dst.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for rgb in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                dst.mux(packet)
        for packet in video.encode():
            dst.mux(packet)
        total = int(duration * AUDIO_RATE)
        t = np.arange(total) / AUDIO_RATE
        fade = np.minimum(1.0, np.minimum(t, duration - t) / 0.2)  # no click at either end
        tone = (0.1 * np.sin(2 * np.pi * 440 * t) * fade).astype(np.float32)
        pts = 0
        for start in range(0, total, 1024):
            chunk = tone[start : start + 1024][None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = AUDIO_RATE, pts
            pts += chunk.shape[1]
            for packet in audio.encode(frame):
                dst.mux(packet)
        for packet in audio.encode():
            dst.mux(packet)
    print(f"{args.out}: {len(frames)} frames {width}x{height} at {rate} fps, {duration:.2f} s, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
