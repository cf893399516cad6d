"""The package fixture: the daemon and ``anonymizer api`` running on one config (api_helpers)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import daemon_helpers as dh
import pytest
from api_helpers import (
    AUDIENCE,
    ISSUER,
    KID,
    MAX_ACTIVE,
    MAX_UPLOAD,
    RATE_PER_MINUTE,
    Api,
    httpx,
    jwks_of,
    rsa_key,
)
from support import free_port


@pytest.fixture(scope="package")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    key = rsa_key()
    (root / "jwks.json").write_text(json.dumps(jwks_of(key, KID)))
    profile = dh.write_fast_profile(root / "fast.yaml", retention={"source": "delete", "after": "0s"})
    folder = dh.folder_entry(root, "api-inbox", profile)
    # A second profile whose folder keeps sources: DELETE then removes the upload itself.
    keep_profile = dh.write_fast_profile(root / "keep.yaml", retention={"source": "keep"})
    keep_folder = dh.folder_entry(root, "api-keep", keep_profile)
    port = free_port()
    config = dh.write_daemon_config(
        root / "daemon.yaml",
        [folder, keep_folder],
        api={
            "listen": f"127.0.0.1:{port}",
            "jwks_file": str(root / "jwks.json"),
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "profiles": {"fast": "api-inbox", "keep": "api-keep"},
            "max_upload_bytes": MAX_UPLOAD,
            "rate_per_minute": RATE_PER_MINUTE,
            "max_active_jobs": MAX_ACTIVE,
        },
    )
    daemon = dh.DaemonProcess(config, root)
    with open(root / "api.stdout", "wb") as out, open(root / "api.stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "anonymizer", "api", "--config", str(config)], cwd=dh.REPO, stdout=out, stderr=err
        )
    url = f"http://127.0.0.1:{port}"
    handle = Api(root, url, key, proc, daemon)
    def stop() -> None:
        dh.stop_process(proc, 20)
        daemon.stop()
        daemon.close()

    TEARDOWN.add(stop)
    try:
        daemon.start()

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"anonymizer api exited early:\n{handle.logs()}")
            try:
                return httpx.get(url + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        dh.wait_for(up, 60, "the API to answer /healthz", interval_s=0.2)
        yield handle
    finally:
        TEARDOWN.stop()


TEARDOWN = dh.FolderTeardown(Path(__file__).parent)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    TEARDOWN.after(nextitem)
