"""Reasons are redacted by name, not by word: a file's name is removed, ordinary words stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonymizer import logs as module
from anonymizer.errors import UnsupportedMediaError

R = module.REDACTED


def test_a_file_called_empty_jpg_does_not_garble_the_reason_that_it_is_empty() -> None:
    # The case from issue 16: the stem "empty" is also a word of the reason.
    exc = UnsupportedMediaError("file is empty (0 bytes)")
    paths = [Path("/srv/in/empty.jpg"), "empty.jpg"]
    assert module.describe_error(exc, paths) == "UnsupportedMediaError: file is empty (0 bytes)"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("cannot open '/srv/in/cam/empty.jpg'", f"cannot open '{R}'"),
        ("cam/empty.jpg: invalid data", f"{R}: invalid data"),
        ("error in empty.jpg.", f"error in {R}."),
        ("error in (empty.jpg)", f"error in ({R})"),
        # Another file whose name merely ends like ours is not ours to redact.
        ("error in data-empty.jpg", "error in data-empty.jpg"),
        ("an empty.jpgx file", "an empty.jpgx file"),
    ],
)
def test_names_and_paths_are_redacted_only_as_whole_tokens(message: str, expected: str) -> None:
    assert module.scrub(message, [Path("/srv/in/cam/empty.jpg"), "cam/empty.jpg"]) == expected


def test_a_name_like_stem_is_still_redacted_where_it_stands_alone_or_with_another_suffix() -> None:
    paths = [Path("/srv/in/Anna_Schmidt_passport.jpg"), "Anna_Schmidt_passport.jpg"]
    message = "wrote Anna_Schmidt_passport.mkv for Anna_Schmidt_passport"
    assert module.scrub(message, paths) == f"wrote {R}.mkv for {R}"


def test_a_name_with_spaces_is_redacted_as_one_token() -> None:
    paths = [Path("/srv/in/Anna Schmidt.jpg"), "Anna Schmidt.jpg"]
    assert module.scrub("bad header in 'Anna Schmidt.jpg'", paths) == f"bad header in '{R}'"
