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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from anonymizer.errors import JobError


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


def run_job(engine: EngineLike, source: Path, temp_output: Path, *, progress: Any = None, masks: Any = None) -> JobOutput:
    """Anonymize ``source`` into ``temp_output`` with ``engine``; return what was written.

    Raise MediaError for an unusable input (the engine's verdict), JobError for an output that
    failed verification, OSError for I/O. The engine
    appends the right suffix when the name does not fit the content (an MP4 called .avi): the
    returned ``extra_suffix`` is what the published name must get too.
    """
    started = time.monotonic()
    # The operator's sidecar masks (anonymizer.mask.regions.ManualMasks), masked beside detections.
    result = engine.process(source, temp_output, progress=progress, masks=masks) if masks else engine.process(source, temp_output, progress=progress)
    written = Path(getattr(result, "output_path", None) or temp_output)
    extra = ""
    if written != temp_output:
        extra = written.name[len(temp_output.name) :] if written.name.startswith(temp_output.name) else written.suffix
    sha256, size = getattr(result, "output_sha256", None), getattr(result, "output_size", None)
    if not sha256 or size is None:
        raise JobError("the engine returned an output it did not verify")
    summary = dict(result.summary())
    summary.setdefault("timings", {})
    return JobOutput(written, extra, summary, time.monotonic() - started, str(sha256), int(size))
