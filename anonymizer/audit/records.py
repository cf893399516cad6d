"""Audit record builders: plain dicts, JSON-able, with no coordinates, crops or plate texts.

File names appear only when the folder's profile opts in (``privacy.log_file_names``); otherwise
the relative path is replaced by an HMAC (see ``anonymizer.audit.log.path_hmac``) so that an
auditor who holds the key can confirm which file a line is about without the log naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utc_iso(ts: float) -> str:
    """Return a UNIX timestamp as an ISO 8601 UTC string with milliseconds."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# What names a model in an audit record: the shipped file's SHA-256, and for a graph derived from
# it on the host (int8, anonymizer.detect.int8) that graph's SHA-256 and the recipe's version.
# ``passes`` says which passes a graph runs when one class runs two (``detail_precision``).
MODEL_IDENTITY_KEYS = ("id", "sha256", "precision", "graph_sha256", "recipe", "shaped_graph_sha256", "passes")


def model_identity(model: dict[str, Any]) -> dict[str, Any]:
    """Return the keys of ``model`` (an engine's ``models`` entry) that identify it, never its path."""
    return {"id": model.get("id"), "sha256": model.get("sha256")} | {
        k: model[k] for k in MODEL_IDENTITY_KEYS[2:] if model.get(k) is not None
    }


def job_record(
    *,
    job_id: str,
    folder: str,
    path_ref: dict[str, str],
    outcome: str,
    time_s: float,
    input_sha256: str | None,
    input_size: int | None,
    output_sha256: str | None = None,
    output_size: int | None = None,
    duplicate_of: str | None = None,
    summary: dict[str, Any] | None = None,
    profile_sha256: str | None = None,
    models: list[dict[str, Any]] | None = None,
    retention: dict[str, Any] | None = None,
    reason: str | None = None,
    attempts: int = 0,
) -> dict[str, Any]:
    """Return the audit record for one finished job (anonymized, duplicate or quarantined).

    Args:
        path_ref: ``{"path_hmac": ...}`` or, when the profile opts in, ``{"path": ...}``.
        summary: the engine's ``result.summary()``; its counts and timings are copied, nothing else.
        retention: the policy that will apply, e.g. ``{"policy": "delete", "due": "...Z"}``.
    """
    summary = summary or {}
    record: dict[str, Any] = {
        "event": "job",
        "time": utc_iso(time_s),
        "job_id": job_id,
        "folder": folder,
        **path_ref,
        "outcome": outcome,
        "attempts": attempts,
        "input": {"sha256": input_sha256, "size": input_size},
        "output": None if output_sha256 is None else {"sha256": output_sha256, "size": output_size},
        "profile_sha256": profile_sha256 or summary.get("profile_sha256"),
        "models": [model_identity(m) for m in (models or summary.get("models") or [])],
    }
    # manual/exclusions: what the operator's sidecar added or removed, with its SHA-256 (an
    # exclusion is the one way to remove a mask, so the record says how many and where from).
    for key in ("kind", "counts", "frames", "duration_s", "timings", "manual", "exclusions"):
        if key in summary:
            record[key] = summary[key]
    if duplicate_of is not None:
        record["duplicate_of"] = duplicate_of
    if retention is not None:
        record["retention"] = retention
    if reason is not None:
        record["reason"] = reason
    return record


def retention_record(*, job_id: str, action: str, time_s: float, detail: str | None = None) -> dict[str, Any]:
    """Return the record written when a source is retired (deleted, moved, or kept on purpose)."""
    record: dict[str, Any] = {"event": "retention", "time": utc_iso(time_s), "job_id": job_id, "action": action}
    if detail is not None:
        record["detail"] = detail
    return record
