"""The task a worker runs: ``anonymizer.jobs.run_job`` on one payload, in a per-delivery folder.

The result is a JSON dict, never an exception, so that the coordinator classifies every outcome
exactly as it does for a job run in its own process:

- ``{"status": "ok", "path", "extra_suffix", "summary", "engine_s", "sha256", "size", ...}``: the
  output lies at ``path`` (under the job's work folder), verified by the engine here; the
  coordinator publishes it if it still has that SHA-256 and size;
- ``{"status": "error", "type": "MediaError" | "JobError" | "ModelError" | "OSError", "reason"}``;
- ``{"status": "mismatch", "reason"}``: this worker's models or version differ from the
  coordinator's; the job waits for a worker that matches;
- ``{"status": "poison", "deliveries"}``: the worker process died ``max_deliveries`` times on this
  job (a file that crashes the decoder, an OOM kill); it is not run again;
- ``{"status": "stale"}``: the job's work folder is gone, so the job has an outcome already (a
  late duplicate delivery); nothing was run.

Deliveries are counted in the result backend (Redis ``INCR``) before the engine starts, so a
process killed mid-job has already counted its delivery.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

from anonymizer.errors import ConfigError, JobError, MediaError, ModelError, config_error_keys
from anonymizer.jobs.run import run_job
from anonymizer.logs import get_logger  # structlog JSON, as the daemon logs
from anonymizer.mask.regions import ManualMasksError
from anonymizer.pipeline import Engine
from anonymizer.review.sidecar import masks_from_documents
from anonymizer.scaleout.app import TASK_NAME
from anonymizer.scaleout.heartbeat import OUTCOMES, describe_device, emit
from anonymizer.scaleout.payload import JobPayload, check_models, profile_from_content

DELIVERY_KEY = "anonymizer:deliveries:"
# How an error travels: by the name of the first class it is an instance of (most specific first).
ERROR_KINDS: tuple[type[BaseException], ...] = (MediaError, FileNotFoundError, OSError, ModelError, JobError)
PROGRESS_EVERY_S = 0.5  # a Redis write per half second per worker: cheap, and status stays current
_engines: dict[str, Any] = {}
_engines_lock = threading.Lock()


def register(app: Any) -> None:
    @app.task(name=TASK_NAME, bind=True)
    def run_job_task(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
        return execute(self, payload)


def worker_name() -> str:
    return os.environ.get("ANONYMIZER_WORKER_NAME") or socket.gethostname()


def count_delivery(app: Any, job_id: str) -> int:
    """Count one more delivery of job ``job_id``; return the count (1 on the first delivery).

    Counted per job, not per task: a job reclaimed from a dead worker host is sent again under a
    new task id, and its deliveries go on counting (toward the poison limit, and naming each
    delivery's own folder ``d<n>`` apart from the one the "dead" worker may still write)."""
    client = getattr(app.backend, "client", None)
    if client is None:
        return 1  # a backend without counters: no delivery limit (docs/scale-out.md)
    key = DELIVERY_KEY + job_id
    n = int(client.incr(key))
    client.expire(key, 7 * 24 * 3600)
    return n


def engine_for(profile: Any) -> Any:
    """One warm engine per profile hash in this worker process (engines are slow to build)."""

    with _engines_lock:
        engine = _engines.get(profile.sha256)
        if engine is None:
            if len(_engines) >= 4:
                _engines.clear()  # profiles change rarely; a bounded cache keeps memory flat
            engine = _engines[profile.sha256] = Engine(profile)
        return engine


def _reason(exc: BaseException, source: str) -> str:
    # No file names leave the worker: OSError's str() quotes the path, messages may too.

    if isinstance(exc, OSError) and not type(exc).__module__.startswith("anonymizer"):
        text = exc.strerror or type(exc).__name__
    elif isinstance(exc, ManualMasksError):
        text = exc.without_values()  # masks that do not fit the media: keys, not coordinates
    else:
        text = str(exc) or type(exc).__name__
    for name in (source, Path(source).name):
        if name:
            text = text.replace(name, "<source>")
    return " ".join(text.split())


def describe_refusal(exc: BaseException) -> dict[str, Any]:
    """What may be said of a refused profile or sidecar: the error's kind and the key paths it
    names, never a value. A sidecar's values are coordinates of people (its label may be a file
    name), and a YAML error quotes the offending line. A model mismatch is said in full: it
    names model ids and SHA-256 prefixes only, and tells the operator what to install."""
    if isinstance(exc, ModelError):
        return {"error": type(exc).__name__, "reason": str(exc)}
    out: dict[str, Any] = {"error": type(exc).__name__, "keys": config_error_keys(exc)}
    if exc.__cause__ is not None:
        out["cause"] = type(exc.__cause__).__name__  # e.g. ScannerError: not valid YAML
    return out


def refusal_reason(stage: str, refusal: dict[str, Any], worker: str) -> str:
    """The reason the coordinator journals and logs for a refused job (no values either)."""
    if "reason" in refusal:
        return str(refusal["reason"])
    where = f" at {', '.join(refusal['keys'])}" if refusal["keys"] else ""
    cause = f" ({refusal['cause']})" if "cause" in refusal else ""
    text = f"the job's {stage} did not validate on worker {worker}: {refusal['error']}{cause}{where}"
    if stage == "profile":
        text += "; run the same anonymizer version on every host"
    return text


def execute(task: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """Run one delivery of a job; return its result dict (see the module docstring).

    The worker's main process is told when the job starts and how it ended (its status record
    and metrics: anonymizer.scaleout.heartbeat), by job id only.
    """
    payload = JobPayload.from_dict(raw)
    started = time.monotonic()
    emit("start", job_id=payload.job_id)
    outcome = "crashed"  # a bug raised out of the task (the worker logs it, Celery records a FAILURE)
    try:
        result = _execute(task, payload)
        outcome = OUTCOMES.get(str(result.get("status")), "failed")
        return result
    finally:
        emit("end", job_id=payload.job_id, outcome=outcome, seconds=time.monotonic() - started)


def _execute(task: Any, payload: JobPayload) -> dict[str, Any]:

    me = worker_name()
    log = get_logger().bind(job_id=payload.job_id, task_id=payload.task_id, worker=me)
    deliveries = count_delivery(task.app, payload.job_id)
    node = str(task.request.hostname or "")  # the worker's node name: its status record's key
    if deliveries > payload.max_deliveries:
        log.error("task.poison", deliveries=deliveries - 1, limit=payload.max_deliveries)
        return {"status": "poison", "deliveries": deliveries - 1, "worker": me}
    stage = "profile"
    try:
        profile = profile_from_content(payload.profile, payload.profile_sha256)
        stage = "models"
        engine = engine_for(profile)
        emit("device", device=describe_device(engine.device))
        check_models(payload.models, engine.models, worker=me)
        stage = "sidecar masks"
        masks = masks_from_documents(payload.masks, payload.masks_sha256) if payload.masks else None
    except (ConfigError, ModelError) as exc:  # ManualMasksError is a ConfigError
        refusal = describe_refusal(exc)
        log.error("task.refused", stage=stage, **refusal)
        return {"status": "mismatch", "reason": refusal_reason(stage, refusal, me), "worker": me}

    work = Path(payload.work_dir)
    if not work.is_dir():
        # The coordinator creates the work folder before it sends a job and removes it once the
        # job has an outcome: this is a late duplicate delivery (say, redelivered by a broker
        # that restarted) of a finished job. Running it would leave an output nobody collects.
        log.info("task.stale", reason="the job has an outcome already")
        return {"status": "stale", "worker": me}
    # Earlier deliveries of this job died: their partial outputs go.
    for old in work.iterdir():
        shutil.rmtree(old, ignore_errors=True)
    own = work / f"d{deliveries}"
    own.mkdir(exist_ok=True)  # never parents: a work folder removed meanwhile stays removed
    tmp = own / f"{payload.job_id}{payload.suffix}"
    last = [0.0]

    def progress(*args: Any, **_: Any) -> None:
        now = time.monotonic()
        if len(args) == 3 and isinstance(args[0], str) and now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            stage, done, total = args
            task.update_state(
                state="PROGRESS",
                meta={"stage": stage, "done": done, "total": total, "worker": me, "node": node, "pid": os.getpid()},
            )

    log.info("task.started", delivery=deliveries, pid=os.getpid())
    task.update_state(
        state="PROGRESS",
        meta={"stage": "starting", "done": 0, "total": 0, "worker": me, "node": node, "pid": os.getpid()},
    )
    try:
        out = run_job(engine, Path(payload.source), tmp, progress=progress, masks=masks)
    except (MediaError, JobError, ModelError, OSError) as exc:
        shutil.rmtree(own, ignore_errors=True)
        kind = next(t.__name__ for t in ERROR_KINDS if isinstance(exc, t))
        log.warning("task.failed", error=kind)
        return {"status": "error", "type": kind, "reason": _reason(exc, payload.source), "worker": me}
    log.info("task.done", engine_s=round(out.engine_s, 3), frames=out.summary.get("frames"))
    return {
        "status": "ok",
        "path": str(out.path),
        "extra_suffix": out.extra_suffix,
        "summary": out.summary,
        "engine_s": out.engine_s,
        "sha256": out.sha256,
        "size": out.size,
        "deliveries": deliveries,
        "worker": me,
    }
