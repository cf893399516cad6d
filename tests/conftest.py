"""Shared fixtures: real models, generated media, and the shared eval set when present."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED_EVAL = ROOT.parent / "shared" / "eval"
sys.path.insert(0, str(TESTS))  # support, media_factory, hostile, daemon_helpers (docs/testing.md)
# One cache of derived int8 graphs for every test and every process they start (a daemon would
# otherwise derive them again into each test's own state_dir/models): the user's, as the CLI's.
os.environ.setdefault(
    "ANONYMIZER_MODEL_CACHE",
    str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "anonymizer"),
)


@pytest.fixture(scope="session", autouse=True)
def int8_graphs() -> None:
    """Derive the default profile's int8 graphs once, before any test waits on a daemon's warm-up."""
    from anonymizer.config import Profile

    detect = Profile().detect
    if "int8" in (detect.faces.precision, detect.plates.precision):
        from anonymizer.detect.int8 import build_all

        build_all()

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


# --- Every folder of test files is collected -------------------------------------------------
# pytest's default norecursedirs once hid tests/dist (a folder name it treats as build output)
# from the suite for weeks. When the whole suite is collected, each folder under tests/ that holds
# test_*.py files must contribute at least one test, or be skipped at module level with a reason
# (an importorskip), which the summary then names. Otherwise the run fails.
_collected_dirs: set[Path] = set()
_skipped_dirs: dict[Path, str] = {}


def pytest_itemcollected(item: pytest.Item) -> None:
    # Before deselection (-m 'not slow'): a folder of slow tests is collected, only not run.
    _collected_dirs.add(Path(item.path).resolve().parent)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped and report.nodeid.endswith(".py"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped_dirs.setdefault((ROOT / report.nodeid).resolve().parent, str(reason))


def _test_folders(root: Path = TESTS) -> set[Path]:
    return {p.parent.resolve() for p in root.rglob("test_*.py") if "__pycache__" not in p.parts}


def _whole_suite(config: pytest.Config) -> bool:
    args = [Path(a.split("::")[0]).resolve() for a in config.args]
    return any(a == TESTS for a in args)


def pytest_collection_finish(session: pytest.Session) -> None:
    if not _whole_suite(session.config) or session.config.getoption("keyword") or session.config.getoption("lf", False):
        return
    missing = sorted(_test_folders() - _collected_dirs - set(_skipped_dirs))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for folder, reason in sorted(_skipped_dirs.items()):
        if folder not in _collected_dirs and reporter is not None:
            reporter.write_line(f"collection guard: {folder.relative_to(ROOT)} skipped whole: {reason}", yellow=True)
    if missing:
        names = ", ".join(str(m.relative_to(ROOT)) for m in missing)
        raise pytest.UsageError(f"collection guard: these test folders contribute no collected test: {names}")
