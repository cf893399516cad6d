"""One engine run: a source in, an anonymized and verified file under a temporary name out.

No journal, no audit, no publishing: the caller decides what the output becomes. The daemon's
in-process worker and a Celery worker on another host call exactly this, so both produce the
same bytes and the same summary for the same profile.

The engine verifies what it wrote before giving it its name (re-opened, same kind, every frame
decodes, as many as were written: ``anonymizer.media.verify``) and returns its SHA-256. That is
the one verification an output gets: the coordinator does not decode it again, it hashes the
file it is about to publish and refuses it unless it is the verified one (same SHA-256 and size).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from anonymizer.errors import JobError
from anonymizer.logs import get_logger


def output_name(name: str, fits: Iterable[str], suffix: str) -> str:
    """Given a source's name (or relative path), the lower-case suffixes that fit its content and
    the suffix an output of that content carries, return the output's name.

    The one output-name rule of every path (engine, daemon, reuse, buckets): the format is decided
    by content, and the name must tell it, so a name whose suffix does not fit (an MP4 called
    .avi) keeps its own suffix and gets the right one appended; a name that fits is kept as is.

    Example:
        >>> output_name("clip.avi", (".mp4", ".m4v"), ".mp4")
        'clip.avi.mp4'
    """
    if PurePosixPath(name).suffix.lower() in tuple(fits):
        return name
    return name + suffix


def added_suffix(planned: str, written: str) -> str:
    """Given the name the engine was asked to write and the name it wrote, return the suffix it
    appended under ``output_name`` ('' when it kept the name)."""
    if written == planned:
        return ""
    return written[len(planned) :] if written.startswith(planned) else PurePosixPath(written).suffix


class EngineLike(Protocol):
    models: list[dict[str, Any]]

    def process(self, src: Path, dst: Path, progress: Any = None) -> Any: ...


@dataclass(frozen=True)
class JobOutput:
    """What ``run_job`` wrote: the file, the suffix the engine added to fit the content, the
    summary, and the SHA-256 and size of the file as the engine verified it."""

    path: Path
    extra_suffix: str
    summary: dict[str, Any]
    engine_s: float
    sha256: str
    size: int


def _release_memory(engine: EngineLike) -> None:
    """Between jobs a daemon or worker keeps no onnxruntime arena on the CPU (Engine.release_memory).

    Never raises: a failure here must neither replace the job's own outcome (a quarantine, a
    drain's requeue) nor fail a job whose output is written and verified. An engine without the
    method (a test's stand-in) has nothing to give back.
    """
    release = getattr(engine, "release_memory", None)
    if release is None:
        return
    try:
        release()
    except Exception as exc:  # onnxruntime raises its own untyped errors
        get_logger().warning("release_memory_failed", error=type(exc).__name__)


def run_job(engine: EngineLike, source: Path, temp_output: Path, *, progress: Any = None, masks: Any = None) -> JobOutput:
    """Anonymize ``source`` into ``temp_output`` with ``engine``; return what was written.

    Raise MediaError for an unusable input (the engine's verdict), JobError for an output that
    failed verification, OSError for I/O. The engine
    appends the right suffix when the name does not fit the content (an MP4 called .avi): the
    returned ``extra_suffix`` is what the published name must get too.
    """
    started = time.monotonic()
    try:
        # The operator's sidecar masks (anonymizer.mask.regions.ManualMasks), masked beside detections.
        result = engine.process(source, temp_output, progress=progress, masks=masks) if masks else engine.process(source, temp_output, progress=progress)
    finally:
        _release_memory(engine)
    written = Path(getattr(result, "output_path", None) or temp_output)
    extra = added_suffix(temp_output.name, written.name) if written != temp_output else ""
    sha256, size = getattr(result, "output_sha256", None), getattr(result, "output_size", None)
    if not sha256 or size is None:
        raise JobError("the engine returned an output it did not verify")
    summary = dict(result.summary())
    summary.setdefault("timings", {})
    return JobOutput(written, extra, summary, time.monotonic() - started, str(sha256), int(size))
