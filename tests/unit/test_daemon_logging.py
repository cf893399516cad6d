"""Error reasons that reach logs, the journal and reason files carry no file names."""

from __future__ import annotations

from pathlib import Path

from anonymizer import logs as module
from anonymizer.errors import MediaError


def test_scrub_redacts_full_paths_relative_paths_names_and_stems() -> None:
    path = Path("/srv/in/site-a/john-doe-2024.mp4")
    message = "cannot open '/srv/in/site-a/john-doe-2024.mp4' (site-a/john-doe-2024.mp4, john-doe-2024)"
    scrubbed = module.scrub(message, [path, "site-a/john-doe-2024.mp4"])
    assert "john-doe" not in scrubbed and "/srv/in" not in scrubbed
    assert scrubbed.count(module.REDACTED) == 3


def test_an_oserror_is_described_by_its_strerror_never_by_its_filename() -> None:
    exc = FileNotFoundError(2, "No such file or directory", "/srv/in/jane-smith.jpg")
    assert "jane-smith" in str(exc)
    assert module.describe_error(exc, []) == "FileNotFoundError: No such file or directory"


def test_a_media_error_quoting_the_path_is_scrubbed_and_kept_on_one_line() -> None:
    exc = MediaError("decode error in\n/srv/in/jane-smith.jpg")
    text = module.describe_error(exc, [Path("/srv/in/jane-smith.jpg")])
    assert text == f"MediaError: decode error in {module.REDACTED}"
