"""Graphs derived on this host from the shipped weights, kept between processes.

int8 graphs (``anonymizer.detect.int8``) and the deterministic rewrites a load needs
(``anonymizer.detect.onnx.rewritten_graph``) are each stored as ``<stem>.onnx`` beside a
``<stem>.json`` sidecar that records what the graph was derived from and its SHA-256. A copy whose
sidecar does not say what the caller expects, or whose bytes do not hash to what the sidecar
recorded, is not used: the caller derives it again. Nothing here is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from anonymizer.durable import fsync_and_rename, temp_path_for

CACHE_ENV = "ANONYMIZER_MODEL_CACHE"


def cache_dir() -> Path:
    """Where derived graphs live: $ANONYMIZER_MODEL_CACHE (the daemon sets <state_dir>/models),
    else $XDG_CACHE_HOME/anonymizer, else ~/.cache/anonymizer."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "anonymizer"


def use_cache_dir(path: Path) -> None:
    """Keep derived graphs in ``path`` for this process (unless the operator set the variable)."""
    os.environ.setdefault(CACHE_ENV, str(path))


def read_graph(folder: Path, stem: str, expected: dict[str, str]) -> tuple[bytes, dict] | None:
    """(bytes, sidecar) of the cached graph ``stem`` whose sidecar holds every item of ``expected``
    and whose bytes hash to the SHA-256 it recorded; None when absent, partial or altered."""
    try:
        meta = json.loads((folder / f"{stem}.json").read_text())
        data = (folder / f"{stem}.onnx").read_bytes()
        if all(meta.get(k) == v for k, v in expected.items()) and hashlib.sha256(data).hexdigest() == meta["graph_sha256"]:
            return data, meta
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def write_graph(folder: Path, stem: str, data: bytes, meta: dict[str, str]) -> Path:
    """Store ``data`` as ``stem`` with its sidecar (``meta`` plus the graph's SHA-256), each file
    written whole or not at all; return the graph's path. Raise OSError when it cannot be written."""
    folder.mkdir(parents=True, exist_ok=True)
    graph_path = folder / f"{stem}.onnx"
    _write_atomically(graph_path, data)
    sidecar = {**meta, "graph_sha256": hashlib.sha256(data).hexdigest()}
    _write_atomically(folder / f"{stem}.json", json.dumps(sidecar, indent=1).encode())
    return graph_path


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = temp_path_for(path)
    try:
        tmp.write_bytes(data)
        fsync_and_rename(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
