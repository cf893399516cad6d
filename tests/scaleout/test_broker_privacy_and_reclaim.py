"""What the broker holds and what happens when a whole worker host dies.

Own Redis (``appendonly yes``, as docs/scale-out.md recommends) and two plain workers beating
every 1 s (stale after 6 beats: 6 s), so that a dead host is noticed in seconds:

- every value in Redis (all keys: messages, unacknowledged messages, results, counters, worker
  records) sampled during a batch and read after it, and the append-only files, hold no source
  file name nor sub-folder name;
- SIGKILL to a worker's whole process tree mid-video: the coordinator reclaims the job within the
  documented bound and the other worker finishes it, one output, published once;
- SIGTERM to a worker: exit 0 after a ``worker.stopped`` line.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import daemon_helpers as dh
import pytest
from scaleout_helpers import RedisServer, WorkerProcess, redis_server_binary, wait_for_workers
from test_scaleout import _assert_audit_verifies, _config, _finished, _in_flight, _jobs, _plain_video, _temporaries

from anonymizer.durable import STAGE_DIR, TMP_PREFIX
from anonymizer.scaleout.heartbeat import STALE_BEATS

HEARTBEAT_S = 1.0  # stale after 6 s: a live worker on a loaded 2-core CI host is never taken for dead
# docs/scale-out.md: a dead holder's job is sent again at most STALE_BEATS beats after its last
# heartbeat plus the coordinator's 2 s check (RECLAIM_CHECK_S) plus its 0.2 s loop turn.
RECLAIM_BOUND_S = STALE_BEATS * HEARTBEAT_S + 2.0 + 0.2
SLACK_S = 4.0  # a busy 2-core CI host: process scheduling, a status read in flight


@pytest.fixture(scope="module")
def aof_broker(tmp_path_factory):
    if redis_server_binary() is None:
        pytest.skip("redis-server not found: install Debian's redis-server (scripts/test.sh does, as root)")
    pytest.importorskip("celery", reason="the scaleout extra is not installed (celery, redis-py)")
    server = RedisServer(tmp_path_factory.mktemp("redis-aof"), appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fast_beating_workers(aof_broker, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workers-hb")
    procs = {
        name: WorkerProcess(workdir, aof_broker.url, name, heartbeat_s=HEARTBEAT_S).start() for name in ("h1", "h2")
    }
    try:
        wait_for_workers(aof_broker.url, list(procs))
    except AssertionError:
        logs = "\n".join(p.logs()[-3000:] for p in procs.values())
        for p in procs.values():
            p.stop()
        raise AssertionError(f"workers did not start:\n{logs}") from None
    yield procs
    for p in procs.values():
        p.terminate()
    for p in procs.values():
        p.stop()


def _redis_values(url: str) -> list[bytes]:
    """Every key and every value in the Redis database, whatever its type."""
    import redis

    client = redis.Redis.from_url(url)
    out: list[bytes] = []
    for key in client.scan_iter(count=500):
        out.append(key)
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key) or b"")
        elif kind == b"list":
            out.extend(client.lrange(key, 0, -1))
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                out.extend((field, value))
        elif kind == b"set":
            out.extend(client.smembers(key))
        elif kind == b"zset":
            out.extend(client.zrange(key, 0, -1))
    client.close()
    return out


def _leaks(blobs: list[bytes], names: list[str]) -> set[str]:
    found = set()
    for blob in blobs:
        for name in names:
            # As bytes, and as JSON escapes it (a non-ASCII name would travel as \\uXXXX).
            if name.encode() in blob or json.dumps(name)[1:-1].encode() in blob:
                found.add(name)
    return found


def test_no_file_or_folder_name_reaches_the_broker_its_results_or_its_append_only_file(
    tmp_path, aof_broker, fast_beating_workers
):
    config = _config(tmp_path, aof_broker.url)
    inbox = tmp_path / "cams" / "in"
    sub = inbox / "Quirinus-Fairweather-Case"
    sub.mkdir()
    drops = {
        inbox / "Zebulon-Quagmire-passport.jpg": dh.FACE_SAMPLES[0],
        sub / "Philomena-Okonkwo-visit.jpg": dh.FACE_SAMPLES[1 % len(dh.FACE_SAMPLES)],
    }
    video = inbox / "Xanthippe-Oberwald-cam7.mp4"
    _plain_video(tmp_path / "v.mp4", 24)
    # A sidecar beside the photo: its label (its own name, which carries the source's) must not
    # travel with the masks either.
    sidecar = inbox / "Zebulon-Quagmire-passport.jpg.masks.yaml"
    names = [p.stem for p in drops] + [video.stem, sub.name]
    samples: list[bytes] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                samples.extend(_redis_values(aof_broker.url))
            except Exception:  # noqa: BLE001 - a sample during a reconnect; the next one counts
                pass
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        sampler.start()
        sidecar.write_text("regions:\n  - box: [1, 1, 20, 20]\n", encoding="utf-8")
        for dst, src in drops.items():
            shutil.copy(src, dst)
        os.replace(tmp_path / "v.mp4", video)
        dh.wait_for(lambda: _finished(tmp_path, 3), 120, "every job to be done and audited")
        stop.set()
        sampler.join(10)
        assert daemon.stop() == 0
    # During: at least one sample caught a job out (its message or progress in Redis).
    assert any(b"anonymizer.run_job" in s or b"PROGRESS" in s for s in samples), "the sampler saw no job"
    assert not _leaks(samples, names), "a name was in Redis while the batch ran"
    assert not _leaks(_redis_values(aof_broker.url), names), "a name is in Redis after the batch"
    # The append-only file: what Redis wrote to disk, every command since it started.
    persisted = [p.read_bytes() for p in aof_broker.workdir.rglob("*") if p.is_file() and "aof" in p.name]
    assert persisted and sum(map(len, persisted)) > 0
    assert any(b"anonymizer.run_job" in blob for blob in persisted), "the messages were persisted"
    assert not _leaks(persisted, names), "a name is in Redis's append-only file"
    # What the workers needed went with the jobs: each output once, the sidecar applied, nothing staged left.
    out = tmp_path / "cams" / "out"
    published = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert published == sorted(p.relative_to(inbox).as_posix() for p in [*drops, video])
    assert all(j["outcome"] == "anonymized" for j in _jobs(tmp_path))
    assert not list((inbox / STAGE_DIR).iterdir()), "a staged link outlived its job"
    assert not _temporaries(out)


def test_a_dead_worker_hosts_job_is_reclaimed_within_the_bound_and_published_once(
    tmp_path, aof_broker, fast_beating_workers
):
    config = _config(tmp_path, aof_broker.url)
    inbox = tmp_path / "cams" / "in"
    _plain_video(tmp_path / "long.mp4", 150)  # long enough to be caught half-way on a fast host
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        os.replace(tmp_path / "long.mp4", inbox / "long.mp4")
        ((job_id, task_id),) = dh.wait_for(lambda: _in_flight(tmp_path), 60, "the job to be sent").items()
        holder = _waited(
            lambda: _mid_job_worker(aof_broker.url, task_id), 90, "the job half-way", daemon, fast_beating_workers
        )
        victim = fast_beating_workers[holder]
        survivor = next(name for name in fast_beating_workers if name != holder)
        killed_at = time.monotonic()
        victim.kill()  # SIGKILL to its main process and its engine processes: a host that died
        new_task = _waited(
            lambda: (_in_flight(tmp_path).get(job_id) or task_id) != task_id and _in_flight(tmp_path)[job_id],
            RECLAIM_BOUND_S + SLACK_S,
            "the coordinator to reclaim the dead worker's job",
            daemon,
            fast_beating_workers,
        )
        reclaimed_after = time.monotonic() - killed_at
        _waited(lambda: _finished(tmp_path, 1), 120, "the survivor to finish the job", daemon, fast_beating_workers)
        events = daemon.events()
        assert daemon.stop() == 0
    print(f"reclaimed {reclaimed_after:.1f} s after the kill (bound {RECLAIM_BOUND_S:.1f} s after the last beat)")
    (job,) = _jobs(tmp_path)
    assert job["outcome"] == "anonymized", job
    assert job["attempts"] <= 1, "a dead host is no fault of the input: no extra attempt"
    out = tmp_path / "cams" / "out"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["long.mp4"]
    assert not (out / f"{TMP_PREFIX}{job_id}.d").exists()
    assert not _temporaries(out)
    (reclaimed,) = [e for e in events if e.get("event") == "job.reclaimed"]
    assert reclaimed["previous_task_id"] == task_id and reclaimed["task_id"] == new_task
    assert reclaimed["dead_worker"].endswith("@" + holder)
    (done,) = [e for e in events if e.get("event") == "job.done"]
    assert done["worker"] == survivor and done["deliveries"] == 2, done
    _assert_audit_verifies(config)
    # The old message left the broker's unacknowledged set: it cannot come back in hours.
    assert task_id.encode() not in b"".join(_redis_values(aof_broker.url))
    # Restarted, the dead host works again (the next test's worker pair is whole).
    fast_beating_workers[holder] = WorkerProcess(
        victim.workdir, aof_broker.url, holder, heartbeat_s=HEARTBEAT_S
    ).start()


def test_a_worker_exits_0_on_sigterm_with_a_stop_line(aof_broker, fast_beating_workers):
    worker = next(iter(fast_beating_workers.values()))
    wait_for_workers(aof_broker.url, [worker.name])
    assert worker.proc is not None
    worker.terminate()
    assert worker.proc.wait(30) == 0, worker.logs()[-2000:]
    lines = [json.loads(line) for line in worker.logs().splitlines() if line.startswith("{")]
    assert lines[-1]["event"] == "worker.stopped", lines[-3:]


def _mid_job_worker(url: str, task_id: str) -> str | None:
    """The name of the worker running ``task_id`` once it is between its first and last frame."""
    from scaleout_helpers import backend_info

    info = backend_info(url, task_id)
    if isinstance(info, dict) and 0 < int(info.get("done") or 0) < int(info.get("total") or 0):
        return str(info["worker"])
    return None


def _waited(predicate, timeout_s: float, what: str, daemon, workers) -> object:
    """dh.wait_for, failing with the coordinator's and the workers' last log lines."""
    try:
        return dh.wait_for(predicate, timeout_s, what, interval_s=0.05)
    except AssertionError as exc:
        logs = "\n".join(f"--- {name}\n{w.logs()[-1500:]}" for name, w in workers.items())
        raise AssertionError(f"{exc}\n--- coordinator\n{daemon.logs()[-3000:]}\n{logs}") from None


def test_a_source_that_cannot_be_staged_is_retried_then_quarantined_and_never_sent(
    tmp_path, aof_broker, fast_beating_workers
):
    config = _config(tmp_path, aof_broker.url, max_attempts=2)
    inbox = tmp_path / "cams" / "in"
    (inbox / STAGE_DIR).write_text("in the way")  # the stage folder cannot be made: as a read-only share
    shutil.copy(dh.FACE_SAMPLES[0], inbox / "face.jpg")
    with dh.DaemonProcess(config, tmp_path).start() as daemon:
        dh.wait_for(lambda: _finished(tmp_path, 1), 60, "the job to be given up")
        events = daemon.events()
        assert daemon.stop() == 0
    (job,) = _jobs(tmp_path)
    assert job["outcome"] == "quarantined" or job["state"] == "quarantined", job
    assert "gave up after 2 attempts" in (job["error"] or ""), job
    assert not [e for e in events if e.get("event") in ("job.dispatched", "dist.broker_unavailable")]
    assert (tmp_path / "cams" / "quarantine" / "face.jpg").exists()
