"""The one output-name rule (anonymizer.jobs.run.output_name) and its inverse, as every caller uses it."""

from __future__ import annotations

import pytest

from anonymizer.jobs.run import added_suffix, output_name
from anonymizer.media.sniff import expected_suffixes


@pytest.mark.parametrize(
    ("name", "fmt", "suffix", "expected"),
    [
        ("clip.mp4", "mp4", ".mp4", "clip.mp4"),
        ("CLIP.MP4", "mp4", ".mp4", "CLIP.MP4"),  # the case of a fitting suffix is kept
        ("photo.jpeg", "jpeg", ".jpg", "photo.jpeg"),  # any suffix of the format fits
        ("clip.avi", "mp4", ".mp4", "clip.avi.mp4"),  # an MP4 called .avi
        ("video.jpg", "mov", ".mov", "video.jpg.mov"),
        ("no_suffix", "png", ".png", "no_suffix.png"),
        ("sub/dir.mp4/x.jpg", "jpeg", ".jpg", "sub/dir.mp4/x.jpg"),  # a relative path: its last part decides
    ],
)
def test_a_name_keeps_a_fitting_suffix_and_gets_the_right_one_appended_otherwise(
    name: str, fmt: str, suffix: str, expected: str
) -> None:
    assert output_name(name, expected_suffixes(fmt), suffix) == expected


def test_the_bucket_form_compares_with_the_outputs_own_suffix() -> None:
    # buckets/sync.py knows the output's name, not its format: the same rule with one fitting suffix.
    assert output_name("in/a.MP4", (".mp4",), ".mp4") == "in/a.MP4"
    assert output_name("in/a.avi", (".mp4",), ".mp4") == "in/a.avi.mp4"


def test_added_suffix_recovers_what_the_rule_appended() -> None:
    planned = ".anonymizer-tmp-j-1.avi"
    assert added_suffix(planned, output_name(planned, expected_suffixes("mp4"), ".mp4")) == ".mp4"
    assert added_suffix(planned, planned) == ""
