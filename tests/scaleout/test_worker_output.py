"""A worker's stdout holds JSON log lines only (issue 25: Celery's banner and its run-as-root
warning came between them, and journald shows stdout and stderr as one stream)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from scaleout_helpers import REPO, wait_for_workers


def test_a_worker_writes_json_lines_only_and_says_so_when_it_runs_as_root(broker, tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text(yaml.safe_dump({"broker": broker.url, "name": "w-json", "concurrency": 1}), encoding="utf-8")
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    with open(out, "wb") as fout, open(err, "wb") as ferr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "anonymizer", "worker", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=fout,
            stderr=ferr,
        )
    try:
        wait_for_workers(broker.url, ["w-json"])
        time.sleep(1.0)  # the banner and the warning come right after start-up, if at all
    finally:
        proc.terminate()
        proc.wait(30)
    lines = [line for line in out.read_text(errors="replace").splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line parses
    assert "worker.starting" in [e["event"] for e in events]
    combined = out.read_text(errors="replace") + err.read_text(errors="replace")
    assert "-------------- " not in combined and "[queues]" not in combined  # the banner
    assert "superuser privileges" not in combined
    if os.geteuid() == 0:
        assert "worker.running_as_root" in [e["event"] for e in events]
