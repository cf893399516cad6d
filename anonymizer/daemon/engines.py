"""Warm engines, one per distinct profile: built at start-up and on reload, before they serve.

Building an engine loads its detectors (seconds, hundreds of MB), so a reload prepares the new
set first, reusing every engine whose profile is unchanged, and swaps it in only once all of
them loaded: a profile whose models fail keeps the old configuration running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anonymizer.config import Profile
from anonymizer.errors import ModelError


def _build_engine(profile: Profile) -> Any:
    # Imported here: the pipeline pulls in onnxruntime and PyAV, which ``anonymizer status`` and
    # the other sub-commands that import the daemon's modules never need.
    from anonymizer.pipeline import Engine

    return Engine(profile)


class EngineCache:
    """One warm Engine per distinct profile (by settings hash); engines are slow to build."""

    def __init__(self, build: Callable[[Profile], Any] = _build_engine) -> None:
        self._build = build  # tests pass a cheap stand-in for the detectors
        self._engines: dict[str, Any] = {}

    def prepare(self, profiles: list[Profile]) -> dict[str, Any]:
        """Return engines for ``profiles``, reusing warm ones; raise ModelError if one fails."""
        ready: dict[str, Any] = {}
        for profile in profiles:
            key = profile.sha256
            if key not in ready:
                ready[key] = self._engines.get(key) or self._build(profile)
        return ready

    def replace(self, engines: dict[str, Any]) -> None:
        self._engines = engines

    def __call__(self, profile: Profile) -> Any:
        engine = self._engines.get(profile.sha256)
        if engine is None:
            raise ModelError("no warm engine for this profile (config changed without a reload)")
        return engine
