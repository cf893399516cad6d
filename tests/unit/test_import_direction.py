"""Scale-out workers never import the coordinator: a worker host runs ``anonymizer.jobs`` and the
engine, not the daemon (issue 23: data flows one way, a package never imports its caller)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "anonymizer"
# The structlog setup still lives in the daemon package; it moves to anonymizer/logs.py (issue 23).
ALLOWED = {"anonymizer.daemon.logging"}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at module top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_scaleout_package_imports_nothing_of_the_daemon_but_its_logging_setup() -> None:
    files = sorted((PACKAGE / "scaleout").glob("*.py"))
    assert files
    offending = {
        f"{path.name}: {name}"
        for path in files
        for name in imported_modules(path)
        if (name == "anonymizer.daemon" or name.startswith("anonymizer.daemon."))
        and not any(name == ok or name.startswith(ok + ".") for ok in ALLOWED)
    }
    assert not offending, sorted(offending)


def test_the_shared_rules_live_below_the_daemon_and_the_buckets() -> None:
    # settle and backoff are used by both; neither may reach up into a caller.
    for name in ("settle.py", "backoff.py", "durations.py"):
        mods = imported_modules(PACKAGE / "jobs" / name)
        assert not {m for m in mods if m.startswith(("anonymizer.daemon", "anonymizer.buckets", "anonymizer.api"))}
