"""The daemon on a real network filesystem: an sshfs (FUSE) mount of a folder served over SSH.

A file written on the server side, directly into the exported folder as a VMS writes to its
share, is invisible to inotify on the client; the daemon must still find it by polling, wait for
it to settle, anonymize it, publish to an output on the same mount and retire the source. The
journal itself must never live on such a mount.

Needs root, /dev/fuse, sshd and sshfs (Debian: openssh-server, sshfs); skipped without them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import daemon_helpers as dh
from support import free_port

from anonymizer.errors import ConfigError
from anonymizer.settings.daemon import load_daemon_config

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
SSHFS = shutil.which("sshfs")
FUSERMOUNT = shutil.which("fusermount3") or shutil.which("fusermount")

pytestmark = [
    pytest.mark.network_mount,
    pytest.mark.skipif(
        not (SSHD and SSHFS and FUSERMOUNT and os.path.exists("/dev/fuse") and os.geteuid() == 0),
        reason="needs root, /dev/fuse, sshd and sshfs (apt-get install openssh-server sshfs)",
    ),
    pytest.mark.skipif(len(dh.FACE_SAMPLES) < 1, reason="samples/faces-*.jpg are missing"),
]


@pytest.fixture
def share(tmp_path: Path):
    """Yield (server-side export folder, client-side mount point) of a live sshfs mount."""
    keys, export, mount = tmp_path / "keys", tmp_path / "export", tmp_path / "mnt"
    for d in (keys, export, mount):
        d.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "host")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "client")], check=True)
    shutil.copyfile(keys / "client.pub", keys / "authorized_keys")
    port = free_port()
    (keys / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nStrictModes no\nUsePAM no\nPidFile none\n"
        "Subsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation folder sshd insists on
    sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", str(keys / "sshd_config")], stderr=subprocess.DEVNULL)
    try:
        dh.wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 20, "sshd to listen")
        subprocess.run(
            [
                SSHFS,
                f"root@127.0.0.1:{export}",
                str(mount),
                "-p",
                str(port),
                "-o",
                f"IdentityFile={keys / 'client'},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null",
                # Short directory-cache timeout keeps the test quick; real shares cache too, which
                # is why settle_s must exceed the mount's attribute cache time.
                "-o",
                "dcache_timeout=1,reconnect",
            ],
            check=True,
            timeout=30,
        )
        try:
            yield export, mount
        finally:
            subprocess.run([FUSERMOUNT, "-u", "-z", str(mount)], check=False)
    finally:
        sshd.terminate()
        sshd.wait(10)


def test_files_written_server_side_on_a_network_share_are_found_by_polling_and_retired(share, tmp_path: Path) -> None:
    export, mount = share
    for sub in ("in", "out", "quarantine"):
        (export / sub).mkdir()
    profile = dh.write_fast_profile(tmp_path / "fast.yaml", retention={"source": "delete"})
    entry = {
        "name": "share",
        "input": str(mount / "in"),
        "output": str(mount / "out"),
        "quarantine": str(mount / "quarantine"),
        "profile": str(profile),
        "poll_interval_s": 0.5,
        "settle_s": 2.5,
    }
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [entry])

    # The SQLite journal on the share is refused before anything starts.
    bad = dh.write_daemon_config(tmp_path / "bad.yaml", [entry], state_dir=str(mount / "state"))
    with pytest.raises(ConfigError, match="network filesystem"):
        load_daemon_config(bad)

    with dh.DaemonProcess(config, tmp_path) as daemon:
        daemon.start()
        # The "VMS" writes on the server, in two halves, never through the mount.
        data = dh.FACE_SAMPLES[0].read_bytes()
        with open(export / "in" / "export-0001.jpg", "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(1.0)
            fh.write(data[len(data) // 2 :])
        dh.wait_for(lambda: (export / "out" / "export-0001.jpg").exists(), 60, "output on the share")
        dh.wait_for(lambda: not (export / "in" / "export-0001.jpg").exists(), 30, "source retired on the share")
        assert daemon.stop() == 0

    job = next(l for l in dh.audit_lines(tmp_path / "audit") if l["event"] == "job")
    assert job["outcome"] == "anonymized" and job["input"]["sha256"] == dh.sha256(dh.FACE_SAMPLES[0])
    assert job["output"]["sha256"] == dh.sha256(export / "out" / "export-0001.jpg")
    assert "export-0001" not in dh.all_daemon_logs(tmp_path)
