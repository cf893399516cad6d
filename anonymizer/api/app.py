"""The ASGI app: ``POST /v1/jobs``, ``GET /v1/jobs/{id}``, ``GET /v1/jobs/{id}/output``,
``DELETE /v1/jobs/{id}``, served by uvicorn (``anonymizer api``). See docs/api.md.

An upload is parsed as it arrives (python-multipart's streaming parser fed from the request
stream), written chunk by chunk into a dot-named file in the profile's daemon input folder and
hashed on the way: never held whole in memory, never spooled elsewhere first. It is refused
with 413 as soon as it passes the size limit, with 400 when it ends early, with 415 when it is
no photo or video; each time nothing is kept. The client's file name is never read.

Errors are ``application/problem+json`` (RFC 9457) with a title and a detail that name no
internal path. Completion is found by polling ``GET /v1/jobs/{id}``.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from anonymizer.api.auth import READ, SUBMIT, Authenticator, AuthError, KeySet, Principal, RateLimiter
from anonymizer.api.jobs import ApiJob, JobStore, now
from anonymizer.settings.api import PROFILE_NAME, ApiConfig
from anonymizer.store import FileStat
from anonymizer.store.inbox import Inbox, Staged

PROBLEM = "application/problem+json"
# Multipart framing around the file (boundaries, part headers): allowed on top of the size limit
# when Content-Length is checked before the body is read.
FRAMING_ALLOWANCE = 64 * 1024


class ApiProblem(Exception):
    """An error answered as problem+json."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers or {}


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str


class Digest(BaseModel):
    sha256: str
    size: int


class JobView(BaseModel):
    id: str
    state: str  # queued | running | review | done | failed
    profile: str
    outcome: str | None = None
    error: str | None = None
    attempts: int = 0
    created_at: str
    updated_at: str
    input: Digest
    output: Digest | None = None
    kind: str | None = None
    frames: int | None = None
    duration_s: float | None = None
    counts: dict[str, dict[str, int]] | None = None
    timings: dict[str, float] | None = None


# The created job's routes, reachable from POST /v1/jobs's answer (OpenAPI links): a client or a
# stateful test follows the job it created by the id in the body.
JOB_LINKS = {
    name: {"operationId": op, "parameters": {"job_id": "$response.body#/id"}, "description": text}
    for name, op, text in (
        ("GetJob", "getJob", "the job's state and summary"),
        ("GetJobOutput", "getJobOutput", "its anonymized file, once done"),
        ("DeleteJob", "deleteJob", "delete its source and output, once finished"),
    )
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM: {}}, "description": text}
    for code, text in {
        400: "bad request (incomplete upload, unknown profile)",
        401: "no token, or an invalid, expired or foreign one",
        403: "the token lacks the scope",
        404: "no such job for this client",
        409: "the job is not in a state that allows this",
        413: "the upload is larger than the limit",
        415: "the upload is no photo or video",
        429: "rate or concurrency limit reached (Retry-After)",
    }.items()
}


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


class ApiService:
    """What the routes need: config, auth, limits, job records, the daemon's journal and audit."""

    def __init__(self, cfg: Any, log: Any) -> None:
        api: ApiConfig = cfg.api
        self.api = api
        self.log = log
        self.inbox = Inbox(cfg)
        self.inbox.open_audit()
        self.store = JobStore(self.inbox)
        self.auth = Authenticator(
            KeySet(api.jwks_file), issuer=api.issuer, audience=api.audience, leeway_s=api.leeway_s
        )
        self.rate = RateLimiter(api.rate_per_minute)
        self.uploading: dict[str, int] = {}
        for _, folder in api.profiles:
            removed = self.inbox.remove_partials(self.inbox.folder(folder).input / "api")
            if removed:
                log.warning("api.partial_uploads_removed", folder=folder, count=removed)

    def principal(self, request: Request) -> Principal:
        try:
            who = self.auth.authenticate(request.headers.get("authorization"))
        except AuthError as exc:
            self.log.info("api.auth_refused", status=exc.status, reason=exc.error)
            raise
        wait = self.rate.take(who.client_id)
        if wait > 0:
            raise ApiProblem(
                429, "Too Many Requests", "request rate limit reached", {"Retry-After": str(int(wait) + 1)}
            )
        return who

    def job_for(self, job_id: str, who: Principal) -> ApiJob:
        job = self.store.get(job_id)
        # Another client's job and a deleted one read exactly as a missing one.
        if job is None or job.deleted_at is not None or (job.client_id != who.client_id and not who.is_admin):
            raise ApiProblem(404, "Not Found", "no such job")
        return job


BEARER = HTTPBearer(auto_error=False, description="JWT access token; scopes jobs:submit / jobs:read / jobs:admin")


def _svc(request: Request) -> ApiService:
    return request.app.state.service


Svc = Annotated[ApiService, Depends(_svc)]


def _who(request: Request, _credentials: Annotated[Any, Security(BEARER)], s: Svc) -> Principal:
    # BEARER only documents the scheme in OpenAPI; the header is checked by the Authenticator.
    return s.principal(request)


Who = Annotated[Principal, Depends(_who)]


def build_app(service: ApiService | None = None) -> FastAPI:
    """Return the FastAPI app; without ``service`` it only serves its OpenAPI document."""
    app = FastAPI(
        title="anonymizer job API",
        version="1",  # the API's own version (the /v1 prefix), not the package's
        description="Submit photos and videos for anonymization (faces, licence plates) and fetch "
        "the verified output. OAuth 2.0 bearer tokens (JWT) with scopes jobs:submit, jobs:read, jobs:admin.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> JSONResponse:
        title = "Unauthorized" if exc.status == 401 else "Forbidden"
        challenge = f'Bearer error="{exc.error}"'
        return _problem(exc.status, title, exc.detail, {"WWW-Authenticate": challenge})

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return _problem(exc.status, exc.title, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: a 405 lists every method of the resource. Starlette's names only the
            # first route of the path (GET), though DELETE /v1/jobs/{id} is a route of its own.
            headers["Allow"] = _allowed_methods(request)
        return _problem(exc.status_code, str(exc.detail), str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        detail = f"invalid or missing parameters: {fields}"
        if service is not None and any(tuple(e.get("loc", ())) == ("query", "profile") for e in exc.errors()):
            detail += "; profile allowed: " + ", ".join(n for n, _ in service.api.profiles)  # as an unknown one
        return _problem(400, "Bad Request", detail)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # The message could quote a path: only the type is logged, nothing is returned.
        if service is not None:
            service.log.error("api.internal_error", error=type(exc).__name__)
        return _problem(500, "Internal Server Error", "the request could not be completed")

    @app.middleware("http")
    async def _access_log(request: Request, call_next: Any) -> Response:
        started = time.monotonic()
        response = await call_next(request)
        if service is not None:
            route = request.scope.get("route")
            service.log.info(
                "api.request",
                method=request.method,
                route=getattr(route, "path", "unmatched"),
                status=response.status_code,
                duration_s=round(time.monotonic() - started, 3),
            )
        return response

    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobView,
        responses={
            202: {"description": "the job, created", "links": JOB_LINKS},
            200: {"model": JobView, "description": "the same content was submitted before", "links": JOB_LINKS},
            **ERRORS,
        },
        summary="Submit a photo or video",
        operation_id="submitJob",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            # Not empty (400), and a photo or video by its bytes (415), which no
                            # schema can say: contentType lists the kinds taken.
                            "properties": {"file": {"type": "string", "format": "binary", "minLength": 1}},
                        },
                        "encoding": {"file": {"contentType": "image/*, video/*"}},
                    }
                },
            }
        },
    )
    async def submit(
        request: Request,
        profile: Annotated[
            str,
            # The document says what the server takes (the live one lists the configured names).
            Query(description="a profile name from the server's api.profiles", pattern=PROFILE_NAME.pattern),
        ],
        principal: Who,
        s: Svc,
    ) -> Response:
        """Upload one file as the multipart part ``file``; returns the job (202, or 200 if known)."""
        principal.require(SUBMIT)
        folder_name = s.api.folder_for(profile)
        if folder_name is None:
            raise ApiProblem(400, "Bad Request", "unknown profile; allowed: " + ", ".join(n for n, _ in s.api.profiles))
        folder = s.inbox.folder(folder_name)
        limit = min(s.api.max_upload_bytes, folder.profile.limits.max_file_bytes)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit + FRAMING_ALLOWANCE:
            raise ApiProblem(413, "Content Too Large", f"uploads are limited to {limit} bytes")
        client = principal.client_id
        active = await run_in_threadpool(s.store.active_count, client)
        if active + s.uploading.get(client, 0) >= s.api.max_active_jobs:
            raise ApiProblem(
                429, "Too Many Requests", f"at most {s.api.max_active_jobs} unfinished jobs per client",
                {"Retry-After": "10"},
            )  # fmt: skip
        tag = s.store.client_tag(client)
        s.uploading[client] = s.uploading.get(client, 0) + 1
        staged = None
        try:
            staged = Staged(folder.input / "api" / tag)
            await _receive(request, staged, limit)
            sha = await run_in_threadpool(staged.finish)
            return await run_in_threadpool(_accept, s, principal, profile, folder_name, staged, sha, tag)
        finally:
            if staged is not None:
                staged.discard()  # gone already when accepted (linked to its final name)
            s.uploading[client] -= 1

    @app.get(
        "/v1/jobs/{job_id}",
        response_model=JobView,
        responses=ERRORS,
        summary="A job's state and summary",
        operation_id="getJob",
    )
    def status(job_id: str, principal: Who, s: Svc) -> dict[str, Any]:
        principal.require(READ)
        job = s.job_for(job_id, principal)
        return s.store.view(job, s.inbox.job(job.journal_id))

    @app.get(
        "/v1/jobs/{job_id}/output",
        responses={200: {"content": {"application/octet-stream": {}}, "description": "the anonymized file"}, **ERRORS},
        response_class=FileResponse,
        summary="Download the anonymized file (SHA-256 in X-Content-SHA256 and Repr-Digest)",
        operation_id="getJobOutput",
    )
    def output(job_id: str, principal: Who, s: Svc) -> Response:
        principal.require(READ)
        job = s.job_for(job_id, principal)
        journal_job = s.inbox.job(job.journal_id)
        view = s.store.view(job, journal_job)
        if view["state"] != "done" or journal_job is None:
            raise ApiProblem(409, "Conflict", f"the job is {view['state']}; no output to fetch")
        out = s.inbox.find_output(s.inbox.folder(job.folder), journal_job, job.rel_path)
        if out is None:
            raise ApiProblem(409, "Conflict", "the output is no longer in place with its recorded SHA-256")
        digest = base64.b64encode(bytes.fromhex(out.sha256)).decode()
        return FileResponse(
            out.path,
            media_type="application/octet-stream",
            filename=f"{job.id}{out.path.suffix}",
            headers={"X-Content-SHA256": out.sha256, "Repr-Digest": f"sha-256=:{digest}:"},
        )

    @app.delete(
        "/v1/jobs/{job_id}",
        status_code=204,
        responses=ERRORS,
        summary="Delete a job's source and output",
        operation_id="deleteJob",
    )
    def delete(job_id: str, principal: Who, s: Svc) -> Response:
        principal.require(SUBMIT)
        job = s.job_for(job_id, principal)
        _delete(s, job, principal)
        return Response(status_code=204)

    from anonymizer.api.editor.routes import editor_router

    app.include_router(editor_router())  # the review editor under /review (docs/review.md)

    def openapi() -> dict[str, Any]:
        # FastAPI documents a 422 for every route with parameters; this API answers 400
        # (problem+json) instead, so those entries would be false.
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for item in doc.get("paths", {}).values():
                for op in item.values():
                    op.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                doc.get("components", {}).get("schemas", {}).pop(name, None)
            if service is not None:
                _list_profiles(doc, [name for name, _ in service.api.profiles])
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _allowed_methods(request: Request) -> str:
    """The methods of every route whose path matches the request's (Starlette's Match.PARTIAL:
    the path matches, the method does not)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _list_profiles(doc: dict[str, Any], names: list[str]) -> None:
    """The served document names this server's profiles (an enum); the committed one, made
    without a config, has the pattern every profile name matches (api.profiles is checked)."""
    for param in doc["paths"]["/v1/jobs"]["post"].get("parameters", []):
        if param.get("name") == "profile":
            param["schema"]["enum"] = sorted(names)


async def _receive(request: Request, staged: Staged, limit: int) -> None:
    """Stream the multipart body into ``staged`` (the part named ``file``). Raise ApiProblem."""
    from python_multipart.multipart import MultipartParser, parse_options_header

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


def _accept(
    s: ApiService, principal: Principal, profile: str, folder_name: str, staged: Staged, sha: str, tag: str
) -> Response:
    """Place a received upload into the folder's inbox and record the job (runs in a thread)."""
    from anonymizer.errors import MediaError
    from anonymizer.media.sniff import sniff

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
            "time": _iso(job.created_at),
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


def _delete(s: ApiService, job: ApiJob, principal: Principal) -> None:
    """Remove the upload and the output of a finished job; mark the record deleted; audit it."""
    import dataclasses
    import os

    from anonymizer.fsutil import resolve_inside

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
            "time": _iso(now()),
            "api_job_id": job.id,
            "job_id": job.journal_id,
            "client_id": principal.client_id,
            "by_admin": principal.client_id != job.client_id,
            "source_removed": removed_source,
            "output_removed": removed_output,
        }
    )
    s.log.info("api.job_deleted", job_id=job.id, source_removed=removed_source, output_removed=removed_output)


def _iso(ts: float) -> str:
    from anonymizer.audit.records import utc_iso

    return utc_iso(ts)
