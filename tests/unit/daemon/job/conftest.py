"""Fixtures of the lifecycle tests: a ``Rig`` per test (job_rig.py), its journal closed after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from job_rig import Rig


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(**profile: Any) -> Rig:
        rig = Rig(tmp_path / f"rig{len(rigs)}", **profile)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.journal.close()


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    return make_rig()
