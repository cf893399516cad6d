"""Scale-out end to end: a coordinator daemon, a real Redis broker, two real Celery workers.

Each test drops files into the daemon's input folder and checks what a DPO relies on: one
verified output per input, an audit chain that verifies, no temporary files left, and bad files
quarantined with a reason while the others finish.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import daemon_helpers as dh
import numpy as np
import pytest
from media_factory import make_video
from scaleout_helpers import backend_info

from anonymizer.durable import TMP_PREFIX


def _config(tmp_path: Path, broker_url: str, *, max_attempts: int = 3) -> Path:
    profile = dh.write_fast_profile(tmp_path / "profile.yaml")
    folder = dh.folder_entry(tmp_path, "cams", profile, poll_interval_s=0.2, settle_s=0.5)
    return dh.write_daemon_config(
        tmp_path / "daemon.yaml",
        [folder],
        broker=broker_url,
        retry={"max_attempts": max_attempts, "base_s": 0.2, "max_s": 1},
    )


def _jobs(tmp_path: Path) -> list[dict]:
    db = sqlite3.connect(f"file:{tmp_path / 'state' / 'journal.sqlite3'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM jobs")]
    finally:
        db.close()


def _in_flight(tmp_path: Path) -> dict[str, str]:
    db = sqlite3.connect(f"file:{tmp_path / 'state' / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'dist.in_flight'").fetchone()
    finally:
        db.close()
    return json.loads(row[0]) if row and row[0] else {}


def _finished(tmp_path: Path, n: int) -> bool:
    jobs = _jobs(tmp_path)
    return len(jobs) == n and all(j["state"] in ("done", "retired", "quarantined") and j["audited"] for j in jobs)


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TMP_PREFIX) or ".partial" in p.name]


def _assert_audit_verifies(config: Path) -> None:
    verify = dh.run_cli("audit", "verify", "--config", str(config))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_coordinator_and_two_workers_process_a_batch_once(tmp_path, broker, workers):
    config = _config(tmp_path, broker.url)
    inbox = tmp_path / "cams" / "in"
    names = []
    for sample in dh.FACE_SAMPLES:
        shutil.copy(sample, inbox / sample.name)
        names.append(sample.name)
    make_video(inbox / "clip.mp4", frames=12)
    names.append("clip.mp4")
    # The same content under a second name: one engine run, two outputs (the second a reuse).
    shutil.copy(dh.FACE_SAMPLES[0], inbox / "copy.jpg")
    names.append("copy.jpg")
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        dh.wait_for(lambda: _finished(tmp_path, len(names)), 120, "every job to be done and audited")
        events = daemon.events()
        assert daemon.stop() == 0
    jobs = _jobs(tmp_path)
    outcomes = sorted(j["outcome"] for j in jobs)
    assert outcomes == sorted(["anonymized"] * (len(names) - 1) + ["duplicate"]), jobs
    out = tmp_path / "cams" / "out"
    published = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert published == sorted(names)  # one output per input, none twice, nothing else
    for name in names:
        assert dh.sha256(out / name) != dh.sha256(inbox / name)
    assert not _temporaries(out)
    done = [e for e in events if e.get("event") == "job.done" and e.get("outcome") == "anonymized"]
    assert len(done) == len(names) - 1
    # The coordinator ran no engine itself: every anonymized job came back from a worker, once.
    assert {e.get("worker") for e in done} == {"w1", "w2"}, "both workers took jobs"
    assert all(e.get("deliveries") == 1 for e in done)
    assert dh.sha256(out / "copy.jpg") == dh.sha256(out / dh.FACE_SAMPLES[0].name)
    text = (tmp_path / "daemon-0.stdout").read_text()
    assert not any(name in text for name in names), "a file name reached the log"
    _assert_audit_verifies(config)


def test_worker_killed_mid_video_job_is_redelivered_and_published_once(tmp_path, broker, workers):
    config = _config(tmp_path, broker.url)
    inbox = tmp_path / "cams" / "in"
    _plain_video(tmp_path / "long.mp4", MID_JOB_FRAMES)
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        os.replace(tmp_path / "long.mp4", inbox / "long.mp4")
        flight = dh.wait_for(lambda: _in_flight(tmp_path), 60, "the job to be sent to a worker")
        ((job_id, task_id),) = flight.items()

        # The worker reports the frames it has done: kill it between the first and the last.
        pid = dh.wait_for(
            lambda: _mid_job_pid(broker.url, task_id), 90, "the video job to be half-way on a worker", interval_s=0.05
        )
        work = tmp_path / "cams" / "out" / f"{TMP_PREFIX}{job_id}.d"
        assert any(work.rglob("*")), "the first delivery was writing under the job's work folder"
        os.kill(pid, signal.SIGKILL)
        dh.wait_for(lambda: _finished(tmp_path, 1), 180, "the redelivered job to finish")
        events = daemon.events()
        assert daemon.stop() == 0
    (job,) = _jobs(tmp_path)
    assert job["outcome"] == "anonymized", job
    out = tmp_path / "cams" / "out"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["long.mp4"]
    assert not work.exists()
    assert not _temporaries(out), "the dead worker's partial output is gone"
    (done,) = [e for e in events if e.get("event") == "job.done"]
    assert done["deliveries"] == 2, done
    _assert_audit_verifies(config)
    # The worker's main process saw its pool process die mid-job: counted lost, not running.
    reported = dh.wait_for(lambda: [w for w in _status_workers(config) if w["outcomes"].get("lost")], 10, "a lost job")
    assert all(job_id not in [c["job_id"] for c in w["current"]] for w in reported)


def test_poison_file_is_quarantined_after_the_delivery_limit_while_others_finish(tmp_path, broker, workers):
    config = _config(tmp_path, broker.url, max_attempts=2)
    inbox = tmp_path / "cams" / "in"
    shutil.copy(dh.FACE_SAMPLES[0], inbox / "poison.jpg")
    for i, sample in enumerate(dh.FACE_SAMPLES):
        shutil.copy(sample, inbox / f"ok{i}.jpg")
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        dh.wait_for(lambda: _finished(tmp_path, 1 + len(dh.FACE_SAMPLES)), 120, "every job to end")
        assert daemon.stop() == 0
    jobs = {j["outcome"]: j for j in _jobs(tmp_path) if j["outcome"] == "quarantined"}
    assert list(jobs) == ["quarantined"]
    assert "died 2 times" in jobs["quarantined"]["error"] and "delivery limit" in jobs["quarantined"]["error"]
    assert sorted(p.name for p in (tmp_path / "cams" / "quarantine").iterdir() if not p.name.endswith(".json"))[:1] == [
        "poison.jpg"
    ]
    outputs = sorted(p.name for p in (tmp_path / "cams" / "out").rglob("*") if p.is_file())
    assert outputs == [f"ok{i}.jpg" for i in range(len(dh.FACE_SAMPLES))]
    assert not _temporaries(tmp_path / "cams" / "out")
    _assert_audit_verifies(config)
    # `anonymizer status` asks the broker: nothing waiting, both workers answering.
    status = dh.run_cli("status", "--config", str(config), "--json")
    assert status.returncode == 0, status.stderr
    dist = json.loads(status.stdout)["dist"]
    assert dist["waiting"] == 0 and {w["name"].split("@")[1] for w in dist["workers"]} == {"w1", "w2"}, dist


def test_an_output_damaged_after_the_workers_verification_is_never_published(tmp_path, broker, workers):
    """The worker verified its output; the coordinator publishes only that file (same SHA-256)."""
    config = _config(tmp_path, broker.url, max_attempts=2)
    inbox = tmp_path / "cams" / "in"
    shutil.copy(dh.FACE_SAMPLES[0], inbox / "damaged.jpg")
    source_sha = dh.sha256(inbox / "damaged.jpg")
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        dh.wait_for(lambda: _finished(tmp_path, 1), 120, "the job to end")
        events = daemon.events()
        assert daemon.stop() == 0
    (job,) = _jobs(tmp_path)
    assert job["state"] == "quarantined" and "output failed verification" in job["error"], job
    retries = [e for e in events if e.get("event") == "job.retry"]
    assert retries and "the engine verified" in retries[0]["reason"]
    kept = tmp_path / "cams" / "quarantine" / "damaged.jpg"
    assert dh.sha256(kept) == source_sha, "the source is kept, untouched"
    assert not [p for p in (tmp_path / "cams" / "out").rglob("*") if p.is_file()], "nothing published"
    _assert_audit_verifies(config)


# Long enough that a worker reports at least one progress between its first and last frame
# (every PROGRESS_EVERY_S, 0.5 s) on an idle machine too: once onnxruntime stopped faulting its
# memory in on every pass, 72 frames could pass from "starting" to done between two reports.
MID_JOB_FRAMES = 216


def _plain_video(path: Path, frames: int) -> Path:
    """A clip with nothing to detect: the cheapest real video job that still takes seconds."""
    y, x = np.mgrid[0:480, 0:640]
    plain = np.stack([x * 255 // 640, y * 255 // 480, (x + y) * 255 // 1120], -1).astype(np.uint8)
    return make_video(path, source=plain, frames=frames)


def _mid_job_pid(broker_url: str, task_id: str) -> int | None:
    """The pid of the worker process running ``task_id``, once it is between its first and last frame."""
    info = backend_info(broker_url, task_id)
    if isinstance(info, dict) and 0 < int(info.get("done") or 0) < int(info.get("total") or 0):
        return int(info["pid"])
    return None


@pytest.mark.slow  # two coordinator start-ups: ~22 s on 2 busy cores, over the default set's budget
def test_coordinator_killed_with_a_job_out_reattaches_and_repeats_nothing(tmp_path, broker, workers):
    config = _config(tmp_path, broker.url)
    inbox = tmp_path / "cams" / "in"
    _plain_video(tmp_path / "long.mp4", 96)
    first = dh.DaemonProcess(config, tmp_path).start()
    try:
        os.replace(tmp_path / "long.mp4", inbox / "long.mp4")
        ((_, task_id),) = dh.wait_for(lambda: _in_flight(tmp_path), 60, "the job to be sent").items()
        dh.wait_for(lambda: _mid_job_pid(broker.url, task_id), 90, "the job to be half-way", interval_s=0.05)
        first.kill()  # kill -9 of the coordinator while a worker runs its job
    finally:
        first.close()
    with dh.DaemonProcess(config, tmp_path).start() as second:
        dh.wait_for(lambda: _finished(tmp_path, 1), 180, "the job to finish under the new coordinator")
        events = second.events()
        assert second.stop() == 0
    (job,) = _jobs(tmp_path)
    assert job["outcome"] == "anonymized" and job["attempts"] == 0, job  # no attempt lost to the restart
    names = [e.get("event") for e in events]
    assert "job.reattached" in names and "job.dispatched" not in names, "followed, not sent again"
    (done,) = [e for e in events if e.get("event") == "job.done"]
    assert done["deliveries"] == 1 and done["task_id"] == task_id, done
    out = tmp_path / "cams" / "out"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["long.mp4"]
    assert not _temporaries(out)
    _assert_audit_verifies(config)


@pytest.mark.slow
def test_broker_restarted_mid_batch_loses_nothing(tmp_path, tmp_path_factory):
    # Its own broker and workers: restarting the shared one would disturb the other tests.
    from scaleout_helpers import RedisServer, WorkerProcess, wait_for_workers

    redis = RedisServer(tmp_path_factory.mktemp("redis-restart")).start()
    procs = [WorkerProcess(tmp_path, redis.url, name).start() for name in ("r1", "r2")]
    try:
        wait_for_workers(redis.url, ["r1", "r2"])
        config = _config(tmp_path, redis.url)
        inbox = tmp_path / "cams" / "in"
        _plain_video(tmp_path / "long.mp4", 96)
        names = ["long.mp4"]
        for sample in [*dh.FACE_SAMPLES, *sorted(dh.SAMPLES.glob("plate-*.jpg"))]:
            shutil.copy(sample, tmp_path / sample.name)
            names.append(sample.name)
        with dh.DaemonProcess(config, tmp_path).start() as daemon:
            for name in names:
                os.replace(tmp_path / name, inbox / name)

            def mid_batch() -> bool:
                flight = _in_flight(tmp_path)
                return bool(flight) and any(_mid_job_pid(redis.url, task) for task in flight.values())

            dh.wait_for(mid_batch, 90, "a job to be half-way on a worker", interval_s=0.05)
            redis.restart()  # no persistence: every queued message and every stored state is gone
            dh.wait_for(lambda: _finished(tmp_path, len(names)), 240, "every job to finish after the restart")
            events = daemon.events()
            assert daemon.stop() == 0
    finally:
        for p in procs:
            p.stop()
        redis.stop()
    assert sorted(j["outcome"] for j in _jobs(tmp_path)) == ["anonymized"] * len(names)
    out = tmp_path / "cams" / "out"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(names)
    assert not _temporaries(out)
    assert "dist.broker_unavailable" in [e.get("event") for e in events] or "dist.task_lost" in [
        e.get("event") for e in events
    ]
    _assert_audit_verifies(config)


def test_a_sidecars_masks_travel_with_the_job_and_a_remote_worker_masks_them(tmp_path, broker, workers):
    """The operator's manual region is masked by the worker that runs the job, and published."""
    from PIL import Image

    config = _config(tmp_path, broker.url)
    inbox = tmp_path / "cams" / "in"
    shutil.copy(dh.FACE_SAMPLES[1], inbox / "gate.jpg")
    (inbox / "gate.jpg.masks.yaml").write_text("regions:\n  - box: [0, 0, 64, 48]\n")
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        dh.wait_for(lambda: _finished(tmp_path, 1), 120, "the job to be done and audited")
        events = daemon.events()
        assert daemon.stop() == 0
    (job,) = _jobs(tmp_path)
    assert job["outcome"] == "anonymized", job
    done = [e for e in events if e.get("event") == "job.done"]
    assert done and done[0].get("worker") in {"w1", "w2"}  # a worker ran it, not the coordinator
    source = np.asarray(Image.open(inbox / "gate.jpg").convert("L"), np.float32)[:48, :64]
    output = np.asarray(Image.open(tmp_path / "cams" / "out" / "gate.jpg").convert("L"), np.float32)[:48, :64]
    assert source.std() > 10 and output.std() < 3  # the box was filled, not left as it was
    audit = (tmp_path / "audit" / "audit.jsonl").read_text()
    assert '"manual"' in audit
    _assert_audit_verifies(config)


def test_status_and_metrics_show_each_worker_and_mark_a_dead_one_stale(scaleout_parts, tmp_path, tmp_path_factory):
    """`anonymizer status` lists the worker (host, device, current job, jobs done, heartbeat),
    its /metrics count the same jobs, and a worker killed with -9 is marked stale."""
    import socket
    import urllib.request

    from scaleout_helpers import RedisServer, WorkerProcess, free_port, wait_for_workers

    # Its own broker: the module's two workers would take the jobs and report too.
    redis = RedisServer(tmp_path_factory.mktemp("redis-status")).start()
    port = free_port()
    worker = WorkerProcess(tmp_path, redis.url, "s1", metrics=f"127.0.0.1:{port}", heartbeat_s=0.5).start()
    try:
        wait_for_workers(redis.url, ["s1"])
        config = _config(tmp_path, redis.url)
        inbox = tmp_path / "cams" / "in"
        _plain_video(tmp_path / "long.mp4", MID_JOB_FRAMES)
        shutil.copy(dh.FACE_SAMPLES[0], inbox / "face.jpg")
        with dh.DaemonProcess(config, tmp_path).start() as daemon:
            dh.wait_for(lambda: _finished(tmp_path, 1), 60, "the photo job to be done")
            os.replace(tmp_path / "long.mp4", inbox / "long.mp4")
            ((job_id, task_id),) = dh.wait_for(lambda: _in_flight(tmp_path), 60, "the video job to be sent").items()
            dh.wait_for(lambda: _mid_job_pid(redis.url, task_id), 90, "the video to be half-way", interval_s=0.05)

            from anonymizer.scaleout.app import make_app
            from anonymizer.scaleout.client import JobQueue

            queue = JobQueue(make_app(redis.url))  # what `anonymizer status` reads, without its start-up time

            def current() -> dict | None:
                (w,) = queue.workers()
                return w if [c["job_id"] for c in w["current"]] == [job_id] else None

            w = dh.wait_for(current, 10, "status to show the running job")
            assert (w["host"], w["device"], w["done"], w["failed"], w["stale"]) == (socket.gethostname(), "cpu", 1, 0, False), w
            assert w["name"].endswith("@s1") and w["heartbeat_age_s"] < 3, w
            scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            assert f'anonymizer_worker_current_job_started_timestamp_seconds{{job_id="{job_id}"}}' in scraped
            dh.wait_for(lambda: _finished(tmp_path, 2), 120, "the video job to be done")
            assert daemon.stop() == 0
        text = dh.run_cli("status", "--config", str(config))
        assert text.returncode == 0, text.stderr
        (line,) = [row for row in text.stdout.splitlines() if "worker anonymizer-" in row]
        assert f"on {socket.gethostname()}, cpu: idle; 2 done, 0 failed; heartbeat" in line, line
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert 'anonymizer_worker_jobs_total{outcome="done"} 2.0' in scraped
        assert "anonymizer_worker_job_duration_seconds_count 2.0" in scraped
        assert "anonymizer_worker_jobs_running 0.0" in scraped
        beat = float(next(r for r in scraped.splitlines() if r.startswith("anonymizer_worker_last_heartbeat")).split()[1])
        assert abs(beat - time.time()) < 5
        assert "face" not in scraped and "long" not in scraped, "a file name reached the metrics"

        worker.kill()  # the whole worker, as its host dying: nothing says goodbye
        dh.wait_for(lambda: _status_workers(config)[0]["stale"], 15, "status to mark the dead worker stale")
        text = dh.run_cli("status", "--config", str(config))
        assert "STALE" in text.stdout and "2 done" in text.stdout, text.stdout
    finally:
        worker.stop()
        redis.stop()


def _status_workers(config: Path) -> list[dict]:
    status = dh.run_cli("status", "--config", str(config), "--json")
    assert status.returncode == 0, status.stderr
    return json.loads(status.stdout)["dist"]["workers"]
