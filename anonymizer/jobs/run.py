"""One engine run: a source in, an anonymized file under a temporary name out, and its summary.

No journal, no audit, no publishing: the caller decides what the output becomes. The daemon's
in-process worker and a Celery worker on another host call exactly this, so both produce the
same bytes and the same summary for the same profile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# Temporary outputs: "<prefix><job id><suffix>" beside the final name, on the same filesystem so
# that publishing is a link, never a copy. Startup clean-up recognises them by this prefix.
TMP_PREFIX = ".anonymizer-tmp-"


class EngineLike(Protocol):
    models: list[dict[str, Any]]

    def process(self, src: Path, dst: Path, progress: Any = None) -> Any: ...


@dataclass(frozen=True)
class JobOutput:
    """What ``run_job`` wrote: the file, the suffix the engine added to fit the content, the summary."""

    path: Path
    extra_suffix: str
    summary: dict[str, Any]
    engine_s: float


def temp_output_for(final: Path, job_id: str, suffix: str) -> Path:
    """The temporary name of job ``job_id``'s output, in the folder of its final name ``final``."""
    return final.parent / f"{TMP_PREFIX}{job_id}{suffix}"


def run_job(engine: EngineLike, source: Path, temp_output: Path, *, progress: Any = None, masks: Any = None) -> JobOutput:
    """Anonymize ``source`` into ``temp_output`` with ``engine``; return what was written.

    Raise MediaError for an unusable input (the engine's verdict), OSError for I/O. The engine
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
    summary = dict(result.summary())
    summary.setdefault("timings", {})
    return JobOutput(written, extra, summary, time.monotonic() - started)
