"""The wire side of the ``Celery`` executor (``anonymizer.daemon.executors``): what a job becomes
on the broker and what a result becomes for the job's lifecycle.

Here: the journaled job → task map, the payload sent, the result read back into the lifecycle's
``complete`` / ``give_up`` / ``defer``, and the clean-up of work folders no job owns. The executor
itself (claiming slots, sending, polling, reclaiming a dead host's job) is ``executors.Celery``.

The daemon still claims, hashes, dedups, verifies, publishes, audits and retires (``Lifecycle``);
only the engine call runs remotely. The order per job::

    claim ─▶ Lifecycle.prepare (stat, SHA-256, job key, reuse)   ─▶ journal meta: job → task id
      ─▶ send the task (payload: paths, profile by content, model SHA-256s, delivery limit)
      ... worker: run_job into <output>/.anonymizer-tmp-<job>.d/d<delivery>/ ...
      ─▶ result ─▶ Lifecycle.complete (the SHA-256 the worker verified, publish, journal, audit)
      ─▶ work folder removed

Why each guarantee holds:

- exactly one output: a job is published once, by this process, from the journal; a second result
  for the same job (a redelivery that also finished) is never read, and its files go with the job's
  work folder. Two jobs of the same content (job key) finishing together: the second reuses the
  first one's output and its own is discarded (``Lifecycle.complete``).
- worker death: the task is redelivered (late ack, reject on worker lost); the new delivery clears
  the work folder of the dead one. After ``retry.max_attempts`` deliveries the task refuses to
  run and the source is quarantined with that reason (a poison file).
- coordinator restart: the job→task map lives in the journal, so jobs still out are re-attached
  to their tasks (not requeued, not sent again); their work folders are left alone.
- dead worker host: a job whose task is held by a worker whose status record went stale (no
  heartbeat for ``STALE_BEATS`` beats) is reclaimed: sent again under a new task id, journaled
  first, and the old message is taken out of the broker's unacknowledged set. A late result of
  the "dead" worker arrives under the old id, which nobody reads (fenced); its files go with the
  work folder. Deliveries are counted per job, so host deaths count toward the poison limit.
- no names in the broker: the worker reads the source through an id-named link in the input
  folder (``<input>/.anonymizer-stage/<job id><suffix>``) and writes under an id-named work
  folder in the output folder's root; sidecar masks travel with neutral labels.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anonymizer.daemon.job import Attempt, Lifecycle
from anonymizer.durable import STAGE_DIR, job_of_staged_name, job_of_work_dir, staged_source_for, work_dir_for
from anonymizer.errors import JobError, MediaError, ModelError
from anonymizer.jobs.run import JobOutput
from anonymizer.settings.daemon import FolderConfig
from anonymizer.store import Journal

META_KEY = "dist.in_flight"  # journal meta: JSON {job id: task id} of the jobs out on workers
ERRORS: dict[str, type[BaseException]] = {
    "MediaError": MediaError,
    "FileNotFoundError": FileNotFoundError,
    "OSError": OSError,
    "ModelError": ModelError,
    "JobError": JobError,
}


@dataclass
class InFlight:
    """A job out on a worker: its attempt (prepared here), the task it was sent as, its work folder."""

    attempt: Attempt
    task_id: str
    work_dir: Path
    sent_at: float
    reclaims: int = 0


def load_task_map(journal: Journal) -> dict[str, str]:
    """The journaled {job id: task id} of the jobs out on workers ({} when none or unreadable)."""
    raw = journal.get_meta(META_KEY)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def save_task_map(journal: Journal, in_flight: dict[str, InFlight]) -> None:
    journal.set_meta(META_KEY, json.dumps({j: f.task_id for j, f in in_flight.items()}, sort_keys=True))


def work_dir_of(a: Attempt) -> Path:
    return work_dir_for(a.folder.output, a.job.id)


def staged_of(a: Attempt) -> Path:
    return staged_source_for(a.folder.input, a.job.id, a.src.suffix)


def build_payload(a: Attempt, task_id: str, max_deliveries: int) -> Any:
    """The task's payload: id-named paths, the profile by content, the models' SHA-256s."""
    # Imported here: celery and its payload module are the scale-out extra, loaded only by a
    # daemon with a broker.
    from anonymizer.scaleout.payload import JobPayload, model_identities, profile_to_content

    profile, profile_sha = profile_to_content(a.folder.profile)
    return JobPayload(
        job_id=a.job.id,
        task_id=task_id,
        source=str(staged_of(a)),
        work_dir=str(work_dir_of(a)),
        suffix=a.src.suffix,
        profile=profile,
        profile_sha256=profile_sha,
        models=model_identities(a.engine.models),
        max_deliveries=max_deliveries,
        # Neutral labels: a sidecar's label may be its file name, which carries the source's.
        masks=[[f"sidecar {i + 1}", text] for i, (_, text) in enumerate(a.masks.documents)] if a.masks else [],
        masks_sha256=list(a.masks.sha256) if a.masks else [],
    )


def finish(lifecycle: Lifecycle, flight: InFlight, state: Any) -> str:
    """Hand a finished task's result to the job's lifecycle; return the job's outcome."""
    a = flight.attempt
    result = state.result or {}
    status = result.get("status") if state.state == "SUCCESS" else "failure"
    a.log = a.log.bind(task_id=flight.task_id, worker=result.get("worker"), deliveries=result.get("deliveries"))
    if status == "ok":
        if not result.get("sha256") or not isinstance(result.get("size"), int):
            return lifecycle.complete(a, JobError("the worker's result names no verified SHA-256 (another version)"))
        output = JobOutput(
            Path(result["path"]),
            str(result.get("extra_suffix") or ""),
            dict(result["summary"]),
            float(result["engine_s"]),
            str(result["sha256"]),
            int(result["size"]),
        )
        if not _inside(output.path, flight.work_dir):
            return lifecycle.complete(a, JobError("the worker returned an output outside the job's work folder"))
        return lifecycle.complete(a, output)
    if status == "poison":
        n = int(result.get("deliveries") or 0)
        reason = f"the worker process died {n} times while processing it (delivery limit {lifecycle.record.retry.max_attempts})"
        return lifecycle.give_up(a, reason, "DeliveryLimit")
    if status == "stale":
        return lifecycle.complete(a, JobError("the job's work folder vanished while it was out"))
    if status == "mismatch":
        return lifecycle.defer(a, str(result.get("reason") or "worker refused the job"))
    if status == "error":
        kind = ERRORS.get(str(result.get("type")), JobError)
        reason = str(result.get("reason") or kind.__name__)
        exc = kind(reason) if not issubclass(kind, OSError) else kind(0, reason)
        if isinstance(exc, OSError):
            exc.strerror = reason
        return lifecycle.complete(a, exc)
    return lifecycle.complete(a, JobError(f"the task failed on the worker ({state.info or state.state})"))


def remove_stale_work_dirs(folders: dict[str, FolderConfig], keep: set[str]) -> int:
    """Remove work folders and staged links of jobs not in ``keep``; return how many went."""
    removed = 0
    for folder in folders.values():
        for dirpath, dirnames, _ in os.walk(folder.output):
            for name in list(dirnames):
                job_id = job_of_work_dir(name)
                if job_id is not None and job_id not in keep:
                    shutil.rmtree(os.path.join(dirpath, name), ignore_errors=True)
                    removed += 1
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        stage = folder.input / STAGE_DIR
        for entry in os.scandir(stage) if stage.is_dir() else ():
            if job_of_staged_name(entry.name) not in keep:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
    return removed


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """What Celery, kombu and redis-py raise while the broker or backend cannot be reached."""
    # Imported here: the scale-out extra, loaded only by a daemon with a broker.
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (OSError, OperationalError, RedisConnectionError, RedisTimeoutError)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False
