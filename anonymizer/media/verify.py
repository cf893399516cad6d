"""Verify a written output before it gets a name: the one check an output gets on its way out.

The engine calls ``verify_output`` on its temporary file, before renaming it, in whatever
process runs it (the CLI, the daemon, a remote worker); the coordinator then only checks that
the file it publishes is the one verified (same SHA-256 and size: ``anonymizer.daemon.job.publish``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from anonymizer.config import LimitsSpec
from anonymizer.errors import JobError, MediaError
from anonymizer.media.sniff import sniff

PROGRESS_EVERY_FRAMES = 50


def verify_output(
    path: Path,
    kind: str,
    limits: LimitsSpec,
    *,
    frames: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> None:
    """Re-open the output at ``path``: the same ``kind`` as its source ("image" or "video"), and
    for a video every frame decodes and there are ``frames`` of them, ending where the container
    says. Raise JobError when it does not (the input may be fine: the job is retried, and a
    source is never given up for an output that failed).

    ``progress("verify", frames decoded, frames)`` is called as a long video decodes.
    """

    try:
        found = sniff(path).kind
        if found != kind:
            raise JobError(f"output failed verification: it is not a {kind}")
        if kind == "image":
            # Imported here: a photo check needs OpenCV only, a video check PyAV only.
            from anonymizer.media.image import read_photo

            read_photo(path, limits)
            return
        # Imported here: a photo check needs OpenCV only, a video check PyAV only.
        from anonymizer.media.video import check_complete, iter_frames, probe_video

        info = probe_video(path, limits)
        decoded, last_time = 0, None
        for frame in iter_frames(path, limits):
            decoded += 1
            last_time = frame.frame.time
            if progress is not None and decoded % PROGRESS_EVERY_FRAMES == 0:
                progress("verify", decoded, frames)
        check_complete(info, decoded, last_time)
    except MediaError as exc:
        # Its message names no file: the media layer reports FFmpeg's strerror, not its text.
        raise JobError(f"output failed verification: {exc}") from exc
    if decoded != frames:
        raise JobError(f"output failed verification: it has {decoded} frames, the engine wrote {frames}")
