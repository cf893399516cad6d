"""The shipped unit's stop timeout fits what a stop takes (docs/daemon.md, "Signals and systemd"):
a job abandoned within 10 s, then the scanner and bucket threads joined for up to 30 s each. A
kill at TimeoutStopSec would count an attempt against a perfectly good input."""

from __future__ import annotations

from pathlib import Path

from anonymizer.daemon.service import Service

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "anonymizer.service"
JOB_STOP_S, THREAD_JOIN_S = 10, 30


def unit_settings() -> dict[str, str]:
    out = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def test_the_unit_waits_long_enough_for_a_clean_stop_and_the_daemon_joins_no_longer() -> None:
    import inspect

    settings = unit_settings()
    assert int(settings["TimeoutStopSec"]) >= JOB_STOP_S + 2 * THREAD_JOIN_S
    serve = inspect.getsource(Service._serve)
    # The joins the budget counts on (a longer one would need a longer TimeoutStopSec).
    assert serve.count(f"join(timeout={THREAD_JOIN_S})") == 2 and "join(timeout=" in serve
    assert settings["Restart"] == "on-failure"  # restarts after a stall (exit 7) too
