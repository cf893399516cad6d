"""What the job routes do beside answering: stream an upload in, place it in the folder's inbox,
delete a finished job. Every step is audited by job id; the client's file name is never read."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from anonymizer.api.auth import Principal
from anonymizer.api.jobs import ApiJob, now
from anonymizer.api.problems import ApiProblem
from anonymizer.audit.records import utc_iso
from anonymizer.errors import MediaError
from anonymizer.fsutil import resolve_inside
from anonymizer.media.sniff import sniff
from anonymizer.store import FileStat
from anonymizer.store.inbox import Staged

if TYPE_CHECKING:  # the routes' service object; app.py imports this module
    from anonymizer.api.app import ApiService


async def receive(request: Request, staged: Staged, limit: int) -> None:
    """Stream the multipart body into ``staged`` (the part named ``file``). Raise ApiProblem."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiProblem(400, "Bad Request", "expected multipart/form-data with a part named 'file'")
    part: dict[str, Any] = {"headers": [], "field": b"", "value": b"", "name": None}
    seen = {"file": False, "end": False, "over": False}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]

    def on_header_end() -> None:
        part["headers"].append((part["field"].lower(), part["value"]))
        part["field"] = part["value"] = b""

    def on_headers_finished() -> None:
        name = None
        for field, value in part["headers"]:
            if field == b"content-disposition":
                # Only the part's name is read; its filename parameter is ignored on purpose.
                name = parse_options_header(value)[1].get(b"name")
        part["name"] = name
        part["headers"] = []

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part["name"] == b"file" and not seen["over"]:
            seen["file"] = True
            staged.write(data[start:end])
            if staged.size > limit:
                seen["over"] = True

    def on_end() -> None:
        seen["end"] = True

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_end": on_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if seen["over"]:
                raise ApiProblem(413, "Content Too Large", f"uploads are limited to {limit} bytes")
        parser.finalize()
    except ClientDisconnect:
        raise ApiProblem(400, "Bad Request", "the upload ended before it was complete") from None
    except ValueError as exc:  # python-multipart's MultipartParseError is a ValueError
        raise ApiProblem(400, "Bad Request", "the multipart body is malformed") from exc
    if not seen["end"]:
        raise ApiProblem(400, "Bad Request", "the upload ended before it was complete")
    if not seen["file"] or staged.size == 0:
        raise ApiProblem(400, "Bad Request", "no file in the part named 'file', or it is empty")


def accept(
    s: ApiService, principal: Principal, profile: str, folder_name: str, staged: Staged, sha: str, tag: str
) -> Response:
    """Place a received upload into the folder's inbox and record the job (runs in a thread)."""
    folder = s.inbox.folder(folder_name)
    try:
        sniffed = sniff(staged.path, max_file_bytes=folder.profile.limits.max_file_bytes)
    except (MediaError, OSError) as exc:
        raise ApiProblem(415, "Unsupported Media Type", "the upload is no photo or video this service handles") from exc
    job_id = s.store.job_id(principal.client_id, folder_name, sha)
    known = s.store.get(job_id)
    if known is not None and known.deleted_at is None:
        view = s.store.view(known, s.inbox.job(known.journal_id))
        s.log.info("api.job_known", job_id=job_id, client=tag, sha256=sha)
        return JSONResponse(view, status_code=200, headers={"Location": f"/v1/jobs/{job_id}"})
    rel_path = f"api/{tag}/{sha}{sniffed.suffix}"
    journal_id = s.inbox.place(folder, staged, rel_path)
    job = ApiJob(job_id, principal.client_id, profile, folder_name, rel_path, sha, staged.size, journal_id, now())
    s.store.save(job)
    s.store.mark_active(job)
    s.inbox.audit(
        {
            "event": "api.submit",
            "time": utc_iso(job.created_at),
            "api_job_id": job.id,
            "job_id": journal_id,
            "client_id": principal.client_id,
            "folder": folder_name,
            "profile": profile,
            "input": {"sha256": sha, "size": staged.size},
        }
    )
    s.log.info("api.job_submitted", job_id=job.id, journal_job_id=journal_id, client=tag, sha256=sha, size=staged.size)
    view = s.store.view(job, s.inbox.job(journal_id))
    return JSONResponse(view, status_code=202, headers={"Location": f"/v1/jobs/{job_id}"})


def delete_job(s: ApiService, job: ApiJob, principal: Principal) -> None:
    """Remove the upload and the output of a finished job; mark the record deleted; audit it."""
    journal_job = s.inbox.job(job.journal_id)
    if journal_job is not None and (journal_job.state in ("queued", "running", "review") or not journal_job.audited):
        raise ApiProblem(409, "Conflict", "the job is still being processed; delete it once it has finished")
    folder = s.inbox.folder(job.folder)
    removed_output = removed_source = False
    if journal_job is not None:
        out = s.inbox.find_output(folder, journal_job, job.rel_path)
        if out is not None:
            out.path.unlink(missing_ok=True)
            removed_output = True
        pending = journal_job.state == "done"  # retention not run yet: this delete is its retention
        if pending or (journal_job.state == "retired" and journal_job.retention == "kept"):
            # The source is removed only while it is still the version the journal hashed.
            try:
                src = resolve_inside(folder.input, job.rel_path)
                st = os.lstat(src)
                if FileStat(st.st_size, st.st_mtime_ns, st.st_ino) == journal_job.stat:
                    src.unlink()
                    removed_source = True
            except OSError:
                pass
        if pending:
            s.inbox.retire(journal_job.id, "deleted" if removed_source else "source-gone")
    s.store.save(dataclasses.replace(job, deleted_at=now()))
    s.inbox.audit(
        {
            "event": "api.delete",
            "time": utc_iso(now()),
            "api_job_id": job.id,
            "job_id": job.journal_id,
            "client_id": principal.client_id,
            "by_admin": principal.client_id != job.client_id,
            "source_removed": removed_source,
            "output_removed": removed_output,
        }
    )
    s.log.info("api.job_deleted", job_id=job.id, source_removed=removed_source, output_removed=removed_output)
