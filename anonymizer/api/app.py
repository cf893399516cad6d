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

from anonymizer.api.actions import accept, delete_job, receive
from anonymizer.api.auth import READ, SUBMIT, Authenticator, AuthError, KeySet, Principal, RateLimiter
from anonymizer.api.jobs import ApiJob, JobStore
from anonymizer.api.problems import PROBLEM, ApiProblem, Problem, problem_response
from anonymizer.settings.api import PROFILE_NAME, ApiConfig
from anonymizer.store.inbox import Inbox, Staged

# Multipart framing around the file (boundaries, part headers): allowed on top of the size limit
# when Content-Length is checked before the body is read.
FRAMING_ALLOWANCE = 64 * 1024


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
        return problem_response(exc.status, title, exc.detail, {"WWW-Authenticate": challenge})

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: a 405 lists every method of the resource. Starlette's names only the
            # first route of the path (GET), though DELETE /v1/jobs/{id} is a route of its own.
            headers["Allow"] = _allowed_methods(request)
        return problem_response(exc.status_code, str(exc.detail), str(exc.detail), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in exc.errors())
        detail = f"invalid or missing parameters: {fields}"
        if service is not None and any(tuple(e.get("loc", ())) == ("query", "profile") for e in exc.errors()):
            detail += "; profile allowed: " + ", ".join(n for n, _ in service.api.profiles)  # as an unknown one
        return problem_response(400, "Bad Request", detail)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # The message could quote a path: only the type is logged, nothing is returned.
        if service is not None:
            service.log.error("api.internal_error", error=type(exc).__name__)
        return problem_response(500, "Internal Server Error", "the request could not be completed")

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
            await receive(request, staged, limit)
            sha = await run_in_threadpool(staged.finish)
            return await run_in_threadpool(accept, s, principal, profile, folder_name, staged, sha, tag)
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
        delete_job(s, job, principal)
        return Response(status_code=204)

    # Imported here: the editor's routes import ApiService from this module.
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


