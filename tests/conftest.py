"""Shared fixtures: real models, generated media, and the shared eval set when present."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED_EVAL = ROOT.parent / "shared" / "eval"
sys.path.insert(0, str(TESTS))  # media_factory, hostile, daemon_helpers

# A profile that keeps tests quick on 2 cores: one scale per class, still the real models.
FAST_PROFILE = """
name: test-fast
detect:
  device: cpu
  faces: {scales: [1.0], threshold: 0.3}
  plates: {scales: [1.0], tile_size: 1280}
"""


@pytest.fixture(scope="session")
def fast_profile_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "fast.yaml"
    path.write_text(FAST_PROFILE)
    return path


@pytest.fixture(scope="session")
def fast_engine(fast_profile_path):
    from anonymizer.config import load_profile
    from anonymizer.pipeline import Engine

    return Engine(load_profile(fast_profile_path))


@pytest.fixture(scope="session")
def shared_eval() -> Path:
    if not SHARED_EVAL.is_dir():
        pytest.skip("../shared/eval is not present on this machine")
    return SHARED_EVAL


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves non-daemon threads running (a hung decoder, a stuck writer)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert not leaked, f"threads leaked: {[t.name for t in leaked]}"
