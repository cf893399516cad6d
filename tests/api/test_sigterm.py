"""Every long-running command stops on SIGTERM with exit 0 and a stop log line: the API and the
daemon here (systemd's ``systemctl stop``), the worker in tests/scaleout/test_broker_privacy_and_reclaim.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import daemon_helpers as dh
from api_helpers import AUDIENCE, ISSUER, KID, httpx, jwks_of, rsa_key
from support import free_port


def _events(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        try:
            names.append(json.loads(line).get("event", ""))
        except ValueError:
            continue
    return names


def test_api_and_daemon_exit_0_on_sigterm_with_a_stop_line(tmp_path):
    (tmp_path / "jwks.json").write_text(json.dumps(jwks_of(rsa_key(), KID)))
    profile = dh.write_fast_profile(tmp_path / "fast.yaml")
    port = free_port()
    config = dh.write_daemon_config(
        tmp_path / "daemon.yaml",
        [dh.folder_entry(tmp_path, "api-inbox", profile)],
        api={
            "listen": f"127.0.0.1:{port}",
            "jwks_file": str(tmp_path / "jwks.json"),
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "profiles": {"fast": "api-inbox"},
        },
    )
    out = tmp_path / "api.stdout"
    with open(out, "wb") as stdout:
        api = subprocess.Popen(
            [sys.executable, "-m", "anonymizer", "api", "--config", str(config)],
            cwd=dh.REPO,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        with dh.DaemonProcess(config, tmp_path).start() as daemon:

            def up() -> bool:
                assert api.poll() is None, out.read_text()
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            dh.wait_for(up, 60, "the API to answer /healthz", interval_s=0.2)
            api.send_signal(signal.SIGTERM)
            assert api.wait(20) == 0, out.read_text()  # not 143: it did not die by the signal
            assert daemon.stop() == 0
            assert "daemon.stopped" in daemon.event_names()
        events = _events(out.read_text())
        assert events[-1] == "api.stopped", events
        assert json.loads(out.read_text().splitlines()[-1])["reason"] == "SIGTERM"
    finally:
        dh.stop_process(api)
