"""`anonymizer status`: piped into a reader that leaves, and jobs out on a broker told apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import daemon_helpers as dh

from anonymizer.daemon.status import split_running


def test_status_piped_into_a_reader_that_has_gone_exits_quietly(tmp_path: Path) -> None:
    """`anonymizer status | head` ended in a BrokenPipeError traceback (issue 25)."""
    from anonymizer.store import Journal

    profile = dh.write_fast_profile(tmp_path / "fast.yaml")
    config = dh.write_daemon_config(tmp_path / "daemon.yaml", [dh.folder_entry(tmp_path, "vms", profile)])
    (tmp_path / "state").mkdir()
    Journal(tmp_path / "state" / "journal.sqlite3").close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "anonymizer", "status", "--config", str(config)],
        cwd=dh.REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader leaves before the first line is written
    stderr = proc.stderr.read().decode()
    code = proc.wait(120)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert code == 141


def test_jobs_handed_to_the_broker_are_told_apart_from_those_a_worker_runs() -> None:
    """Two one-slot workers and four jobs out: two run, two wait on the broker (issue 25 saw
    "4 running"). A stale worker's job is not running anywhere: it waits for redelivery."""
    workers = [
        {"name": "gpu-a", "stale": False, "state": "running", "current": [{"job_id": "j-1", "running_s": 3.0}]},
        {"name": "gpu-b", "stale": False, "state": "running", "current": [{"job_id": "j-2", "running_s": 1.0}]},
        {"name": "gpu-c", "stale": True, "state": "running", "current": [{"job_id": "j-3", "running_s": 99.0}]},
    ]
    where = split_running(["j-1", "j-2", "j-3", "j-4"], {"waiting": 1, "workers": workers})
    assert where == {"j-1": "worker gpu-a", "j-2": "worker gpu-b", "j-3": "broker", "j-4": "broker"}
    assert split_running(["j-1"], None) == {"j-1": "daemon"}
