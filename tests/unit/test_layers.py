"""Imports flow one way between the package's parts: no part imports a part that imports it back.

A cycle between packages is how a coordinator grows back into one tangle (the daemon importing the
API that imports the daemon), and an import inside a function hides it from a reader, so the graph
below counts every import statement, at module top or not.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import anonymizer

PACKAGE = Path(anonymizer.__file__).parent

# Lower layers never import higher ones (docs/layout.md draws the same picture). A part missing
# here fails the test, so a new package has to be placed deliberately. ``jobs`` sits beside the
# engine: it holds the rules every caller shares (the output name, outcomes, settling, backoff)
# and runs an engine through a protocol, so the pipeline can use its name rule without a cycle.
LAYERS: list[set[str]] = [
    {"errors", "detections", "durable", "fsutil", "schema", "config"},
    {"logs", "media", "detect", "track", "mask", "stream", "pipeline", "jobs"},
    {"audit", "review", "store", "settings", "evaluate"},
    {"scaleout", "api", "buckets"},
    {"daemon"},
    {"cli", "config_docs", "__main__", "__init__"},
]


def part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def module_of(path: Path) -> list[str]:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imported_parts(text: str, package: list[str]) -> set[str]:
    """The parts of anonymizer that one file's text imports, wherever the import statement stands.

    ``package`` is the dotted package the file lies in, for relative imports.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names = [".".join(base + ([node.module] if node.module else []))]
            else:
                names = [node.module or ""]
            if names[0] == "anonymizer":  # from anonymizer import fsutil
                names = [f"anonymizer.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "anonymizer" and len(parts) > 1:
                found.add(parts[1])
    return found


def part_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        source = part_of(path)
        here = module_of(path)
        package = here if path.name == "__init__.py" else here[:-1]
        graph[source] |= imported_parts(path.read_text(encoding="utf-8"), package) - {source}
    return graph


def test_every_part_has_a_layer() -> None:
    placed = set().union(*LAYERS)
    assert set(part_graph()) <= placed, f"place these in LAYERS: {sorted(set(part_graph()) - placed)}"


def test_no_part_imports_a_higher_layer() -> None:
    layer = {part: level for level, parts in enumerate(LAYERS) for part in parts}
    upward = sorted(
        f"{source} (layer {layer[source]}) imports {target} (layer {layer[target]})"
        for source, targets in part_graph().items()
        for target in targets
        if target in layer and source in layer and layer[target] > layer[source]
    )
    assert not upward, "\n".join(upward)


def test_no_cycle_between_parts() -> None:
    graph = part_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_graph_sees_every_kind_of_import() -> None:
    # The checker itself: imports inside functions, "from anonymizer import x" and relative ones.
    text = "def f():\n    from anonymizer.api import app\n\nfrom anonymizer import fsutil\nfrom ..store import db\n"
    assert imported_parts(text, ["anonymizer", "daemon", "job"]) == {"api", "fsutil", "daemon"}
    assert imported_parts("from .. import store\n", ["anonymizer", "daemon"]) == {"store"}
    assert part_of(PACKAGE / "daemon" / "service.py") == "daemon"
    assert part_of(PACKAGE / "cli.py") == "cli"
