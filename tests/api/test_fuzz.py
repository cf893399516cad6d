"""The API's document and its server agree: schemathesis, a schema-driven fuzzer, run against the
live ``anonymizer api`` on loopback from the document it serves, every check, stateful phase
included (it follows the OpenAPI links from a created job to its routes), bounded in cases and time.

Its own server (no daemon: jobs stay queued, so their output and delete answer 409, documented)
with limits high enough that the fuzzer is not answered 429 for everything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import daemon_helpers as dh
import pytest
from api_helpers import api_process, httpx
from support import free_port

pytest.importorskip("schemathesis", reason="the apitest extra is not installed (pip install -e '.[apitest]')")

MAX_EXAMPLES = 12  # per operation and phase
MAX_TIME_S = 25  # the fuzzing and stateful phases repeat until this budget is spent


def test_schemathesis_finds_no_failure_against_the_live_api(tmp_path):
    profile = dh.write_fast_profile(tmp_path / "fast.yaml")
    port = free_port()
    config = dh.write_daemon_config(
        tmp_path / "daemon.yaml",
        [dh.folder_entry(tmp_path, "inbox", profile), dh.folder_entry(tmp_path, "other", profile)],
        api={
            "listen": f"127.0.0.1:{port}",
            "jwks_file": str(tmp_path / "jwks.json"),
            "issuer": "https://localhost/fuzz",
            "audience": "anonymizer",
            "profiles": {"cctv": "inbox", "press.photos": "other"},
            "max_upload_bytes": 1024 * 1024,
            "rate_per_minute": 100000,
            "max_active_jobs": 10000,
        },
    )
    made = dh.run_cli("api", "dev-token", "--config", str(config), "--scope", "jobs:submit jobs:read")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    with api_process(config, port, tmp_path / "api.out") as url:
        # A schema-valid upload may still be no photo or video: 415, documented, is the right
        # answer to random bytes (JSON Schema cannot say "a JPEG"). Every other check as shipped.
        (tmp_path / "schemathesis.toml").write_text(
            '[checks.positive_data_acceptance]\nexpected-statuses = ["2xx", "401", "403", "404", "409", "415", "429"]\n'
        )
        st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
        run = subprocess.run(
            [
                st, "run", f"{url}/openapi.json",
                "--checks", "all",
                "--phases", "examples,coverage,fuzzing,stateful",
                "--max-examples", str(MAX_EXAMPLES),
                "--max-time", str(MAX_TIME_S),
                "--seed", "20261206",
                "--workers", "1",
                "--request-timeout", "20",
                "--header", f"Authorization: Bearer {token}",
                "--report", "junit",
                "--report-dir", str(tmp_path / "report"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=MAX_TIME_S + 120,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        # What the fuzzer run found, said outright: the served document lists this
        # server's profiles and links the created job to its routes; an empty profile is refused
        # by the document and the server alike; a 405 names every method of the resource.
        doc = httpx.get(url + "/openapi.json").json()
        post = doc["paths"]["/v1/jobs"]["post"]
        (param,) = post["parameters"]
        assert param["schema"]["enum"] == ["cctv", "press.photos"] and param["schema"]["pattern"]
        assert set(post["responses"]["202"]["links"]) == {"GetJob", "GetJobOutput", "DeleteJob"}
        headers = {"Authorization": f"Bearer {token}"}
        empty = httpx.post(url + "/v1/jobs?profile=", files={"file": ("a.jpg", b"x")}, headers=headers)
        assert empty.status_code == 400 and empty.headers["content-type"] == "application/problem+json"
        options = httpx.request("OPTIONS", url + "/v1/jobs/a-0123", headers=headers)
        assert options.status_code == 405 and options.headers["allow"] == "DELETE, GET"
        assert "stateful" in run.stdout.lower(), run.stdout[-3000:]
        print(run.stdout[-1500:])
