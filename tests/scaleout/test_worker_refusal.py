"""A worker that refuses a job logs the error's kind and key paths, never a sidecar's values.

The coordinator validates every sidecar before it sends a job, so a worker refuses one only
when the two disagree (another anonymizer version): run here by calling the task's own
``execute`` on a real payload, with the delivery counted in the real Redis.
"""

from __future__ import annotations

import hashlib
import json

import daemon_helpers as dh
import pytest

from anonymizer.config import load_profile
from anonymizer.logs import configure_logging
from anonymizer.scaleout.app import TASK_NAME, make_app
from anonymizer.scaleout.payload import JobPayload, model_identities, profile_to_content
from anonymizer.scaleout.task import engine_for, execute

LABEL = "jane-doe-at-the-gate.mp4.masks.yaml"  # a sidecar's label is its file name
VALUES = ("612.5", "418.25", "100.75", "50.5", "700.125")
SIDECARS = {
    # Valid YAML whose region is inverted (x2 < x1): the checker quotes the box it got.
    "bad-region": "regions:\n  - box: [612.5, 418.25, 100.75, 50.5]\n",
    # Broken YAML: the parser's message quotes the line it stopped at.
    "bad-yaml": "regions:\n  - box: [612.5, 418.25, 700.125\n  - polygon: [[1, 2]\n",
}


# Celery warns when a second app in one process registers the task name (the earlier test
# modules made apps too); each app's task is still bound to its own app and broker.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateTaskNameWarning")


@pytest.fixture(scope="module")
def app(broker):
    return make_app(broker.url)


@pytest.mark.parametrize("kind", sorted(SIDECARS))
def test_a_refused_sidecar_is_logged_by_key_path_and_kind_without_its_values(tmp_path, app, capsys, kind):
    profile = load_profile(dh.write_fast_profile(tmp_path / "p.yaml"))
    content, sha = profile_to_content(profile)
    text = SIDECARS[kind]
    payload = JobPayload(
        job_id="j-refused1", task_id=f"j-refused1-{kind}", source=str(tmp_path / "in.mp4"), work_dir=str(tmp_path / "w"),
        suffix=".mp4", profile=content, profile_sha256=sha,
        models=model_identities(engine_for(profile).models), max_deliveries=3,
        masks=[[LABEL, text]], masks_sha256=[hashlib.sha256(text.encode()).hexdigest()],
    )  # fmt: skip
    configure_logging("info")  # structlog JSON to the (captured) stdout, as a worker logs
    result = execute(app.tasks[TASK_NAME], json.loads(json.dumps(payload.to_dict())))

    logged = capsys.readouterr().out
    (line,) = [json.loads(row) for row in logged.splitlines() if '"task.refused"' in row]
    assert result["status"] == "mismatch" and line["stage"] == "sidecar masks", line
    assert line["error"] == "ManualMasksError"
    if kind == "bad-region":
        assert line["keys"] == ["regions[0].box"], line
    else:
        assert line["keys"] == [] and line["cause"].endswith("Error"), line
    for leaked in (*VALUES, LABEL, "jane-doe", "box: ["):
        assert leaked not in logged, f"{leaked!r} reached the worker's log"
        assert leaked not in result["reason"], f"{leaked!r} reached the reason the coordinator logs"
    assert "sidecar masks did not validate on worker" in result["reason"]
