"""What the editor's reviewer drew, checked as a sidecar: the same parser and the same fit check
as a sidecar file beside a source (anonymizer.review.sidecar), so the editor cannot save what
``anonymizer review reject --masks`` would refuse.

The browser sends the sidecar's own structure as JSON (``{"regions": [...], "exclusions": [...]}``);
it is written as YAML, parsed by ``parse_sidecar_text`` and checked against the held output's
frame size, frame count and duration. Errors come back one per line with the index of the shape
they belong to, so the editor shows each next to its shape.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from anonymizer.config import Checker
from anonymizer.mask.regions import ManualMasksError
from anonymizer.review.sidecar import masks_from_dict, parse_sidecar_text

MAX_BODY_BYTES = 256 * 1024  # a few thousand key boxes: far more than a person draws
MAX_SHAPES = 500
LABEL = "<editor>"
_WHERE = re.compile(r"\b(regions|exclusions)\[(\d+)\]")


@dataclass(frozen=True)
class Checked:
    """A drawn sidecar: its YAML text when valid, else the errors ``[{list, index, message}]``."""

    yaml_text: str | None
    errors: tuple[dict[str, Any], ...]


def check_shapes(
    body: bytes, *, width: int, height: int, photo: bool, frames: int | None, duration_s: float | None
) -> Checked:
    """Given the request body, return the sidecar YAML or every error, each tied to its shape."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return Checked(None, ({"list": None, "index": None, "message": "the body is not JSON"},))
    if not isinstance(data, dict):
        return Checked(
            None, ({"list": None, "index": None, "message": "expected {regions: [...], exclusions: [...]}"},)
        )
    count = sum(len(v) for k in ("regions", "exclusions") if isinstance(v := data.get(k), list))
    if count > MAX_SHAPES:
        return Checked(None, ({"list": None, "index": None, "message": f"at most {MAX_SHAPES} shapes at once"},))
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    # Every shape's errors at once: the shapes that parse are checked against the media too, so a
    # reviewer sees a misfit box beside a malformed one rather than one after the other.
    c = Checker(LABEL)
    parsed = masks_from_dict(yaml.safe_load(text), c)
    problems = c.errors + parsed.fit_errors(width, height, photo=photo, frames=frames, duration_s=duration_s)
    if problems:
        return Checked(None, tuple(_error(line) for line in problems))
    try:  # what the daemon will run: the same parser and fit check as for a sidecar file
        parse_sidecar_text(text, LABEL).check_fit(width, height, photo=photo, frames=frames, duration_s=duration_s)
    except ManualMasksError as exc:
        return Checked(None, tuple(_error(line) for line in str(exc).splitlines() if line.startswith(LABEL)))
    return Checked(text, ())


def _error(line: str) -> dict[str, Any]:
    message = line.removeprefix(LABEL).removeprefix(":").strip()
    found = _WHERE.search(line)
    if found is None:
        return {"list": None, "index": None, "message": message}
    return {"list": found.group(1), "index": int(found.group(2)), "message": message}
