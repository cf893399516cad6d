"""Small helpers every test folder uses: a settable clock, polling, ports, hashes, modes, metrics.

``tests/conftest.py`` puts ``tests/`` on ``sys.path``, so any test imports them with
``from support import ...``. Each helper is defined here once; the folder helpers
(``daemon_helpers``, ``faults/helpers.py``, ``scaleout_helpers`` ...) import what they need from
here instead of keeping a copy. Media generators live in ``media_factory.py`` and ``hostile.py``.
"""

from __future__ import annotations

import hashlib
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class FakeClock:
    """A clock the test moves by hand (``clock.now += 5``): pass it where code takes ``clock=``.

    Mutable on purpose: the code under test reads it, the test advances it.
    """

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, *, interval_s: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_mode(path: Path) -> int:
    """The permission bits of a file or folder (``0o600``), without its type bits."""
    return stat.S_IMODE(Path(path).stat().st_mode)


def metric(text: str, name: str, **labels: str) -> float:
    """Given a Prometheus text exposition, return the value of the sample ``name{labels}``.

    Raise StopIteration when no such sample is there.
    """
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{want}}} " if labels else f"{name} "
    return float(next(line for line in text.splitlines() if line.startswith(prefix)).split()[-1])
