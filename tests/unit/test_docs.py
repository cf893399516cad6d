"""README.md stays a front door, and no link in it or in docs/ points at a file that is not there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_CHARS = 15_000
# [text](target) and [text](target "title"); images too. Targets with a scheme leave the repository.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def relative_links(path: Path) -> list[str]:
    """Given a markdown file, return the targets of its links into the repository, anchors cut off.

    Code blocks are left out: a shell line such as ``[ -f x ](y)`` is not a link.
    """
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    targets = []
    for target in LINK.findall(text):
        if EXTERNAL.match(target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def test_the_readme_stays_a_front_door_under_15000_characters() -> None:
    length = len((ROOT / "README.md").read_text(encoding="utf-8"))
    assert length < README_MAX_CHARS, f"README.md is {length} characters; move details to docs/"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_an_existing_file(path: Path) -> None:
    missing = [t for t in relative_links(path) if not (path.parent / t).exists()]
    assert not missing, f"{path.relative_to(ROOT)} links to missing files: {missing}"


def test_the_link_finder_sees_links_and_skips_code_and_urls(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        'See [the daemon](docs/daemon.md#signals), ![a figure](img/x.png "title") and\n'
        "[the site](https://example.org/a.md), [above](#top).\n"
        "```sh\n[ -f a ](not-a-link.md)\n```\n",
        encoding="utf-8",
    )
    assert relative_links(page) == ["docs/daemon.md", "img/x.png"]
