"""What is written from the schema: profiles/default.yaml and the key tables of the docs.

Each table lies between marker comments in its markdown file under docs/, e.g. in
docs/configuration.md::

    <!-- schema:profile -->
    | key | default | allowed | meaning |
    ...
    <!-- /schema:profile -->

``scripts/gen_config_docs.py`` rewrites them (``--check``: only report); the tests fail while
any of them differs from what the schema gives, so docs and sample cannot drift from the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from anonymizer.schema import markdown_table, sample_yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = "profiles/default.yaml"

PROFILE_HEADER = """\
Default profile: maximum recall. Every key is optional; omitted keys take the values shown here.
Validate with: anonymizer validate-config profiles/default.yaml
Generated from the schema (the fields of anonymizer/config.py): edit the docs there, then run
scripts/gen_config_docs.py (or: anonymizer validate-config --print-defaults > profiles/default.yaml)."""


def default_profile_yaml() -> str:
    """The commented sample profile: every key, its default and its doc."""
    from anonymizer.config import Profile

    return sample_yaml(Profile, Profile(), PROFILE_HEADER)


def _profile_table() -> str:
    from anonymizer.config import Profile

    return markdown_table(Profile, Profile())


def _daemon_table() -> str:
    from anonymizer.settings.daemon import DaemonConfig

    return markdown_table(DaemonConfig)


def _worker_table() -> str:
    from anonymizer.settings.scaleout import WorkerConfig

    return markdown_table(WorkerConfig)


def _api_table() -> str:
    from anonymizer.settings.api import ApiConfig

    return markdown_table(ApiConfig)


# table name -> (the markdown file holding it, what goes between its markers)
TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "profile": ("docs/configuration.md", _profile_table),
    "daemon": ("docs/daemon.md", _daemon_table),
    "worker": ("docs/scale-out.md", _worker_table),
    "api": ("docs/api.md", _api_table),
}


def with_table(text: str, name: str, table: str) -> str:
    """Given a markdown text, return it with the table ``name`` between its markers replaced.

    Raise ValueError when the markers are missing (a moved or deleted table is a docs bug).
    """
    pattern = re.compile(rf"(<!-- schema:{name} -->\n).*?(<!-- /schema:{name} -->)", re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"no <!-- schema:{name} --> ... <!-- /schema:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + table + m.group(2), text, count=1)


def generated(root: Path = ROOT) -> dict[Path, str]:
    """Every generated file's path and the text it must have."""
    out = {root / DEFAULT_PROFILE: default_profile_yaml()}
    for name, (relative, table) in TABLES.items():
        path = root / relative
        text = out.get(path, path.read_text(encoding="utf-8"))
        out[path] = with_table(text, name, table())
    return out


def stale(root: Path = ROOT) -> list[Path]:
    """The generated files whose text differs from what the schema gives."""
    return [p for p, text in generated(root).items() if not p.is_file() or p.read_text(encoding="utf-8") != text]


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite the stale generated files; return them."""
    changed = stale(root)
    texts = generated(root)
    for path in changed:
        path.write_text(texts[path], encoding="utf-8")
    return changed
