"""Scale-out pieces without a broker: config validation, the profile by content, model checks."""

from __future__ import annotations

import json

import pytest
import yaml

from anonymizer.config import load_profile, profile_from_dict
from anonymizer.errors import ConfigError, ModelError
from anonymizer.scaleout.payload import JobPayload, check_models, profile_from_content, profile_to_content
from anonymizer.settings.daemon import daemon_config_from_dict
from anonymizer.settings.scaleout import load_worker_config, redacted


def _daemon(tmp_path, **top):
    (tmp_path / "in").mkdir(exist_ok=True)
    profile = tmp_path / "p.yaml"
    profile.write_text("name: p\n")
    data = {
        "state_dir": str(tmp_path / "state"),
        "audit_dir": str(tmp_path / "audit"),
        "folders": [
            {"name": "a", "input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
             "quarantine": str(tmp_path / "q"), "profile": str(profile)}
        ],
        **top,
    }
    return daemon_config_from_dict(data, tmp_path / "daemon.yaml")


def test_daemon_without_broker_runs_jobs_in_process(tmp_path):
    assert _daemon(tmp_path).broker is None


def test_daemon_broker_is_validated_and_its_password_never_echoed(tmp_path):
    cfg = _daemon(tmp_path, broker="redis://:s3cret@10.0.0.5:6379/0", broker_in_flight=4)
    assert cfg.broker.url.endswith("/0") and cfg.broker.in_flight == 4
    with pytest.raises(ConfigError) as err:
        _daemon(tmp_path, broker="http://:s3cret@host/0")
    assert "at 'broker'" in str(err.value) and "'http' is not one of" in str(err.value)
    assert "s3cret" not in str(err.value)
    with pytest.raises(ConfigError, match="needs a redis:// result backend"):
        _daemon(tmp_path, broker="amqp://guest@rabbit:5672//")
    assert _daemon(tmp_path, broker="amqp://rabbit//", result_backend="redis://r:6379/1").broker.result_backend
    with pytest.raises(ConfigError, match="only meaningful with a broker"):
        _daemon(tmp_path, broker_in_flight=3)
    assert redacted("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"


def test_worker_config_names_file_key_and_allowed_values(tmp_path):
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump({"broker": "redis://127.0.0.1:6379/0", "concurrency": 0, "gpu": 1}))
    with pytest.raises(ConfigError) as err:
        load_worker_config(path)
    text = str(err.value)
    assert str(path) in text and "at 'concurrency'" in text and "below the minimum 1" in text
    assert "at 'gpu': unknown key" in text
    path.write_text(yaml.safe_dump({"broker": "rediss://broker:6380/0", "name": "gpu-1"}))
    cfg = load_worker_config(path)
    assert (cfg.concurrency, cfg.name, cfg.metrics, cfg.heartbeat_s) == (1, "gpu-1", None, 5.0)
    path.write_text(yaml.safe_dump({"broker": "redis://h:6379/0", "metrics": "9809", "heartbeat_s": 0}))
    text = str(pytest.raises(ConfigError, load_worker_config, path).value)
    assert "at 'metrics': expected HOST:PORT" in text and "at 'heartbeat_s'" in text, text
    path.write_text(yaml.safe_dump({"broker": "redis://h:6379/0", "metrics": "[::1]:9809"}))
    assert load_worker_config(path).metrics == ("::1", 9809)


def test_profile_travels_by_content_and_a_changed_one_is_refused():
    profile = load_profile()
    content, sha = profile_to_content(profile)
    content = json.loads(json.dumps(content))  # as it crosses the broker
    assert profile_from_content(content, sha) == profile
    content["mask"]["strength"] = 2.0
    with pytest.raises(ConfigError, match="hashes to"):
        profile_from_content(content, sha)
    with pytest.raises(ConfigError, match="does not fit"):
        profile_from_content({**content, "extra": 1}, sha)


def test_worker_refuses_models_that_differ_from_the_coordinators():
    ours = [{"id": "centerface", "sha256": "a" * 64, "license": "MIT"}]
    check_models([{"id": "centerface", "sha256": "a" * 64}], ours, worker="w1")
    with pytest.raises(ModelError, match="model SHA-256 mismatch on worker w1 .*centerface: coordinator bbbb"):
        check_models([{"id": "centerface", "sha256": "b" * 64}], ours, worker="w1")


def test_payload_refuses_unknown_or_missing_keys():
    profile = profile_from_dict({"name": "x"})
    content, sha = profile_to_content(profile)
    payload = JobPayload("j-1", "j-1-t", "/s/a.jpg", "/o/.d", ".jpg", content, sha, [], 3)
    assert JobPayload.from_dict(payload.to_dict()) == payload
    with pytest.raises(ConfigError, match="expected keys"):
        JobPayload.from_dict({**payload.to_dict(), "shell": "rm -rf /"})


def test_validate_config_tells_worker_configs_and_shows_the_broker_without_password(tmp_path):
    from daemon_helpers import run_cli

    worker = tmp_path / "worker.yaml"
    worker.write_text(yaml.safe_dump({"broker": "redis://:s3cret@h:6379/0", "concurrency": 2}))
    result = run_cli("validate-config", str(worker))
    assert result.returncode == 0, result.stderr
    assert "valid worker config, broker redis://:***@h:6379/0, concurrency 2" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr
    _daemon(tmp_path)  # creates the folders the daemon config names
    daemon = tmp_path / "daemon.yaml"
    daemon.write_text(yaml.safe_dump({
        "state_dir": str(tmp_path / "state"), "audit_dir": str(tmp_path / "audit"), "broker": "redis://h:6379/0",
        "folders": [{"name": "a", "input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
                     "quarantine": str(tmp_path / "q"), "profile": str(tmp_path / "p.yaml")}],
    }))
    result = run_cli("validate-config", str(daemon))
    assert result.returncode == 0, result.stderr
    assert "broker: redis://h:6379/0 (jobs run on `anonymizer worker` processes)" in result.stdout



def test_a_broker_without_the_dist_extra_is_refused_at_load_naming_the_extra(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "worker.yaml"
    config.write_text("broker: redis://127.0.0.1:6379/0\n")
    code = (
        "import sys\nsys.modules['celery'] = None\n"  # as on an install without the scaleout extra
        "from anonymizer.cli import main\nsys.exit(main(['validate-config', sys.argv[1]]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 1 and "at 'broker': needs the scaleout extra" in proc.stderr, proc.stderr


def test_a_source_is_staged_under_its_job_id_as_a_hard_link_and_staging_again_keeps_it(tmp_path):
    from anonymizer.durable import job_of_staged_name, stage_source, staged_source_for

    src = tmp_path / "in" / "Anna Example at the door.MP4"
    src.parent.mkdir()
    src.write_bytes(b"video bytes")
    staged = staged_source_for(tmp_path / "in", "j-0123abcd", src.suffix)
    assert staged == tmp_path / "in" / ".anonymizer-stage" / "j-0123abcd.mp4"
    assert stage_source(src, staged) == "link"
    assert staged.stat().st_ino == src.stat().st_ino and staged.read_bytes() == b"video bytes"
    inode = staged.stat().st_ino
    assert stage_source(src, staged) == "link" and staged.stat().st_ino == inode  # kept as is
    # A stale stage of another file under the same id is replaced, never read.
    other = tmp_path / "in" / "other.mp4"
    other.write_bytes(b"other")
    assert stage_source(other, staged) == "link" and staged.read_bytes() == b"other"
    assert job_of_staged_name(staged.name) == "j-0123abcd"
