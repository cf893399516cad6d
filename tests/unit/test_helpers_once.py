"""Each shared test helper is defined once: a second copy of one, anywhere under tests/, fails here."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
# The modules that own shared helpers (docs/testing.md, "Helpers"), and the names each one owns.
OWNERS = ("support.py", "media_factory.py", "hostile.py", "daemon_helpers.py")


def top_level_names(path: Path) -> set[str]:
    """Given a Python file, return the names of its module-level functions and classes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in tree.body if isinstance(node, kinds)}


def test_no_test_file_defines_again_a_helper_the_shared_modules_own() -> None:
    owned = {name: owner for owner in OWNERS for name in top_level_names(TESTS / owner) if not name.startswith("_")}
    copies = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.parent == TESTS and path.name in OWNERS:
            continue
        for name in sorted(top_level_names(path) & owned.keys()):
            copies.append(f"{path.relative_to(TESTS)}: {name} (owned by {owned[name]})")
    assert not copies, "import these instead of redefining them:\n" + "\n".join(copies)


def test_the_shared_modules_do_not_define_the_same_helper_twice() -> None:
    seen: dict[str, str] = {}
    twice = []
    for owner in OWNERS:
        for name in top_level_names(TESTS / owner):
            if name in seen and not name.startswith("_"):
                twice.append(f"{name}: {seen[name]} and {owner}")
            seen.setdefault(name, owner)
    assert not twice, twice
