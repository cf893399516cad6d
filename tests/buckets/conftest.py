"""Package fixtures: moto's S3 server process, a cutting proxy in front of it, and the real daemon
running one bucket itself; the other buckets are driven tick by tick from the tests, with the
same daemon doing their jobs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import daemon_helpers as dh
import pytest
from s3_helpers import CREDENTIALS, CuttingProxy, MotoServer, Stack, bucket_entry, make_profile


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("buckets")
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)  # boto3's standard chain, in this process and the daemon's
    moto = MotoServer(root).start()
    proxy = CuttingProxy(moto.port)
    proxy.start()
    s3 = moto.client()
    for name in ("auto", "cut", "replace", "versioned", "junk"):
        s3.create_bucket(Bucket=f"{name}-src")
        s3.create_bucket(Bucket=f"{name}-sink")
    s3.put_bucket_versioning(Bucket="versioned-src", VersioningConfiguration={"Status": "Enabled"})
    profile = make_profile(root)
    folder = dh.folder_entry(root, "s3-scratch", profile)
    config = dh.write_daemon_config(
        root / "daemon.yaml", [folder], buckets=[bucket_entry("auto", moto.url, poll_interval_s=0.3)]
    )
    manual = dh.write_daemon_config(
        root / "manual.yaml",
        [folder],
        buckets=[
            bucket_entry("cut", proxy.url),
            bucket_entry("replace", moto.url, multipart_threshold_bytes=5 * 1024**2),
            bucket_entry("versioned", moto.url, sse={"mode": "AES256"}),
            bucket_entry("junk", moto.url),
        ],
    )
    daemon = dh.DaemonProcess(config, root)

    def stop() -> None:
        daemon.stop()
        daemon.close()
        proxy.close()
        moto.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    TEARDOWN.add(stop)
    try:
        daemon.start()
        yield Stack(root, moto, proxy, daemon, manual, s3)
    finally:
        TEARDOWN.stop()


TEARDOWN = dh.FolderTeardown(Path(__file__).parent)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    TEARDOWN.after(nextitem)
