"""The package, its tests, benchmarks and scripts pass ruff with the project's stated rules.

ruff's default exclude (like pytest's norecursedirs) skips folders named dist and build: the
scale-out package went unlinted under anonymizer/dist. The second test checks that every package
folder is among the files ruff reads.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ["anonymizer", "tests", "bench", "scripts"]


def ruff() -> list[str]:
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return [str(beside)]
    if shutil.which("ruff"):
        return ["ruff"]
    pytest.skip("ruff is not installed (the test extra brings it: ./scripts/test.sh)")


def test_ruff_checks_every_python_file():
    proc = subprocess.run([*ruff(), "check", "--no-cache", *FOLDERS], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_sees_every_package_folder():
    """No package folder is silently excluded by ruff's defaults (as anonymizer/dist was)."""
    proc = subprocess.run(
        [*ruff(), "check", "--no-cache", "--show-files", "anonymizer"], cwd=ROOT, capture_output=True, text=True
    )
    seen = {Path(line.strip()).resolve().parent for line in proc.stdout.splitlines() if line.strip().endswith(".py")}
    packages = {p.parent.resolve() for p in (ROOT / "anonymizer").rglob("__init__.py")}
    assert packages <= seen, sorted(str(p.relative_to(ROOT)) for p in packages - seen)
