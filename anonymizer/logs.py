"""structlog JSON lines on stdout, for journald.

Jobs are named by id and content hash. File names, plate texts, coordinates and crops are never
passed to the logger; where an exception message might quote a path (PyAV's errors do), it goes
through ``scrub`` first. A profile may opt in to names (``privacy.log_file_names``), in which case
the worker adds a ``path`` field itself.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

from anonymizer.mask.regions import ManualMasksError

REDACTED = "<redacted>"


def configure_logging(level: str = "info", *, stream: str = "stdout") -> None:
    """Send structlog events as one JSON object per line to ``stream`` (journald adds the time too).

    Services log to stdout, for journald. One-shot commands log to stderr, so that a warning
    raised while they work never lands among the JSON their stdout promises (``process --json``).
    """
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"stream must be stdout or stderr, not {stream!r}")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        # No fixed file: each logger writes to the sys.stdout (or sys.stderr) of the moment it is
        # made (a test that swaps it, or a process that reopens it, never leaves a logger writing
        # to a closed stream).
        logger_factory=(
            structlog.PrintLoggerFactory() if stream == "stdout" else lambda *_: structlog.PrintLogger(sys.stderr)
        ),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (PyAV, onnxruntime helpers) stay quiet
    # below WARNING: their messages can quote file names we do not control.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def get_logger(**context: Any) -> Any:
    return structlog.get_logger("anonymizer.daemon").bind(**context)


# What may stand right before or after a name in a message: the start or end of the text,
# whitespace, quotes, brackets, path separators and punctuation. A needle is redacted only as a
# whole token between two of these, so the stem of ``empty.jpg`` does not eat the word in
# "file is empty (0 bytes)" and the name ``a.jpg`` does not eat the tail of ``data.jpg``.
_BEFORE = r"(?<![^\s'\"`/\\(\[{<,;:=])"
_AFTER = r"(?![^\s'\"`/\\)\]}>,;:=.!?])"


def _name_like(stem: str) -> bool:
    """True for a stem that reads as a file name rather than a word ("IMG_0042", "jane-doe-2024").

    A bare word ("empty", "video", "clip") is also ordinary message text; redacting it there
    garbles reasons and hides nothing, because libraries quote whole names or paths, not stems.
    """
    return len(stem) > 3 and not stem.isalpha()


def scrub(message: str, paths: Iterable[Path | str]) -> str:
    """Return ``message`` with every given path, relative path, file name and name-like stem
    redacted, each only where it stands as a whole token (see ``_BEFORE``/``_AFTER``).

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
            if _name_like(stem):
                needles.add(stem)
    for needle in sorted(needles, key=len, reverse=True):
        message = re.sub(_BEFORE + re.escape(needle) + _AFTER, REDACTED, message)
    return message


def describe_error(exc: BaseException, paths: Iterable[Path | str]) -> str:
    """Return a one-line reason for ``exc`` with no file names: ``Type: message`` scrubbed.

    For OSError the ``strerror`` is used, never ``str(exc)``, which quotes the file name; for
    an invalid sidecar its keys, never its values (``ManualMasksError.without_values``).
    """

    if isinstance(exc, OSError) and not type(exc).__module__.startswith("anonymizer"):
        text = exc.strerror or type(exc).__name__
    elif isinstance(exc, ManualMasksError):
        text = exc.without_values()  # a sidecar's values are where people are
    else:
        text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {scrub(' '.join(text.split()), paths)}"
