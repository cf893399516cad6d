"""structlog JSON lines on stdout, for journald.

Jobs are named by id and content hash. File names, plate texts, coordinates and crops are never
passed to the logger; where an exception message might quote a path (PyAV's errors do), it goes
through ``scrub`` first. A profile may opt in to names (``privacy.log_file_names``), in which case
the worker adds a ``path`` field itself.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

REDACTED = "<redacted>"


def configure_logging(level: str = "info") -> None:
    """Send structlog events as one JSON object per line to stdout (journald adds the time too)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (PyAV, onnxruntime helpers) stay quiet
    # below WARNING: their messages can quote file names we do not control.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("anonymizer.daemon").bind(**context)


def scrub(message: str, paths: Iterable[Path | str]) -> str:
    """Return ``message`` with every given path, relative path, file name and stem redacted.

    Longer strings are replaced first so that a full path is not half-replaced by its file name.
    """
    needles: set[str] = set()
    for p in paths:
        s = str(p)
        if not s:
            continue
        needles.add(s)
        name = Path(s).name
        if name:
            needles.add(name)
            stem = Path(name).stem
            # A stem of 1-3 characters ("a", "001") would redact unrelated text; names that
            # short carry little information anyway.
            if len(stem) > 3:
                needles.add(stem)
    for needle in sorted(needles, key=len, reverse=True):
        message = message.replace(needle, REDACTED)
    return message


def describe_error(exc: BaseException, paths: Iterable[Path | str]) -> str:
    """Return a one-line reason for ``exc`` with no file names: ``Type: message`` scrubbed.

    For OSError the ``strerror`` is used, never ``str(exc)``, which quotes the file name.
    """
    if isinstance(exc, OSError) and not type(exc).__module__.startswith("anonymizer"):
        text = exc.strerror or type(exc).__name__
    else:
        text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {scrub(' '.join(text.split()), paths)}"
