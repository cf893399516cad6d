"""The review editor's routes under ``/review`` of ``anonymizer api`` (docs/review.md, "Editor").

``/review/`` serves the editor itself (three static files shipped in the package: HTML, JS and
CSS, loading nothing else, under a Content-Security-Policy that allows nothing but this origin);
``/review/api/...`` serves the data, each call with a bearer JWT checked by the API's own
``Authenticator`` and carrying the ``review`` scope:

    GET  /review/api/me                          the operator id (the token's sub) and its scopes
    GET  /review/api/queue                       held outputs, oldest first: counts, no names
    GET  /review/api/jobs/{id}                   one held job: sizes, QA timeline, leak frames, masks
    GET  /review/api/jobs/{id}/frames/{n}        frame n of the HELD OUTPUT as JPEG
    GET  /review/api/jobs/{id}/source/{n}        frame n of the source: scope review:source, audited
    POST /review/api/jobs/{id}/check             the drawn shapes, validated as a sidecar
    POST /review/api/jobs/{id}/apply             reject, re-run with the drawn shapes, hold again
    POST /review/api/jobs/{id}/approve | reject  the decision, as ``anonymizer review`` records it

The client names jobs by id only; every path comes from the daemon's journal and review store.
Decisions go into the journal's ``reviews`` table with the token's subject as the operator, and
the daemon applies and audits them exactly as decisions made with ``anonymizer review``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from anonymizer.api.app import ApiService
from anonymizer.api.auth import AuthError
from anonymizer.api.editor.frames import FrameCache, photo_jpeg
from anonymizer.api.editor.shapes import MAX_BODY_BYTES, check_shapes
from anonymizer.api.problems import ApiProblem
from anonymizer.errors import ConfigError
from anonymizer.fsutil import resolve_inside
from anonymizer.review.hold import Review, ReviewStore, check_operator, review_record
from anonymizer.store import display_rel

REVIEW = "review"
REVIEW_SOURCE = "review:source"
_JOB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
# Nothing but this origin: no inline script or style, no frame, no form target, no plug-in.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # held pictures stay out of the browser's disk cache
}
STATIC = {"index.html": "text/html; charset=utf-8", "editor.js": "text/javascript; charset=utf-8",
          "editor.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}  # fmt: skip


@dataclass(frozen=True)
class Reviewer:
    """Who is reviewing: the operator id the audit records (the token's ``sub``) and the scopes."""

    operator: str
    scopes: frozenset[str]

    @property
    def may_view_source(self) -> bool:
        return REVIEW_SOURCE in self.scopes


def _service(request: Request) -> ApiService:
    service = request.app.state.service
    if service is None:  # the app built only for its OpenAPI document
        raise ApiProblem(404, "Not Found", "no such route")
    return service


def _reviewer(request: Request) -> Reviewer:
    """The caller, from a valid bearer token with the review scope. Raise AuthError (401/403).

    Not the API's per-client rate limit: stepping and playing a clip asks for a frame at a time.
    The review scopes are their own: jobs:admin grants none of them (a DAM client's token must not
    open held pictures)."""
    import jwt

    s = _service(request)
    header = request.headers.get("authorization")
    try:
        who = s.auth.authenticate(header)
        if REVIEW not in who.scopes:
            raise AuthError(403, f"the token lacks the scope {REVIEW}", error="insufficient_scope")
        # The signature and claims were checked just above; this only reads the subject again.
        subject = jwt.decode(str(header).partition(" ")[2].strip(), options={"verify_signature": False}).get("sub")
        try:
            operator = check_operator(subject if isinstance(subject, str) else "")
        except ConfigError:
            raise AuthError(
                403,
                "the token's subject (sub) is no usable operator id (1-64 of letters, digits, . _ @ -)",
                error="insufficient_scope",
            ) from None
    except AuthError as exc:
        s.log.info("api.auth_refused", status=exc.status, reason=exc.error)
        raise
    return Reviewer(operator, who.scopes)


Who = Annotated[Reviewer, Depends(_reviewer)]
Svc = Annotated[ApiService, Depends(_service)]


@contextmanager
def _store(s: ApiService) -> Iterator[ReviewStore]:
    # One connection per request: SQLite connections stay on their thread, requests do not.
    store = s.inbox.open_reviews()
    try:
        yield store
    finally:
        store.close()


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers=HEADERS)


def _review(store: ReviewStore, job_id: str) -> Review:
    review = store.get(job_id) if _JOB_ID.match(job_id) else None
    if review is None:
        raise ApiProblem(404, "Not Found", "no such job held for review")
    return review


def _report(store: ReviewStore, job_id: str) -> dict[str, Any]:
    """The held output's QA report data (timeline, leak frames, sizes): written beside the copy."""
    try:
        return json.loads((store.copy_dir(job_id) / f"{job_id}.qa.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _describe(s: ApiService, store: ReviewStore, review: Review, now: float, *, full: bool) -> dict[str, Any]:
    row = store.job_row(review.job_id)
    summary = json.loads(row["summary_json"]) if row is not None and row["summary_json"] else {}
    report = _report(store, review.job_id)
    counts = summary.get("counts") or report.get("counts") or {}
    frames = summary.get("frames") or report.get("frames")
    duration = summary.get("duration_s") or report.get("duration_s")
    data: dict[str, Any] = {
        "job_id": review.job_id,
        "folder": review.folder,
        "review": review.state,
        "job_state": row["state"] if row is not None else None,
        "rounds": review.rounds,
        "age_s": round(now - review.held_at, 1),
        "operator": review.operator,
        "kind": summary.get("kind") or report.get("kind"),
        "frames": frames,
        "duration_s": duration,
        "detections": sum(int(c.get("regions", 0)) for c in counts.values() if isinstance(c, dict)),
        "likely_leaks": len(report.get("leak_frames") or []),
    }
    try:
        folder = s.inbox.folder(review.folder)
    except KeyError:
        folder = None
    if folder is not None and folder.profile.privacy.log_file_names:
        job = s.inbox.job(review.job_id)
        data["file"] = display_rel(job.rel_path) if job is not None else None
    if full:
        data.update(
            width=report.get("width"),
            height=report.get("height"),
            fps=round(frames / duration, 6) if frames and duration else None,
            counts=counts,
            manual=summary.get("manual"),
            exclusions=summary.get("exclusions"),
            output=report.get("output"),
            timeline=report.get("timeline"),
            leak_frames=report.get("leak_frames") or [],
            # The shapes of the last apply: a later apply replaces them, so the editor starts from them.
            masks=_masks_of(review),
        )
    return data


def _masks_of(review: Review) -> dict[str, Any] | None:
    if review.masks_yaml is None:
        return None
    import yaml

    try:
        data = yaml.safe_load(review.masks_yaml)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _held_copy(s: ApiService, store: ReviewStore, review: Review) -> tuple[Path, Any]:
    """(the held output, its folder's limits) while it waits for a decision. Raise ApiProblem."""
    if review.state != "waiting":
        raise ApiProblem(409, "Conflict", f"the output is not held now (review {review.state})")
    copy = store.copy_dir(review.job_id) / review.copy_name
    try:
        folder = s.inbox.folder(review.folder)
    except KeyError:
        raise ApiProblem(404, "Not Found", "the job's folder is no longer configured") from None
    if not copy.is_file():
        raise ApiProblem(409, "Conflict", "the held output is not in place")
    return copy, folder.profile.limits


def _frame(frames: FrameCache, path: Path, limits: Any, index: int, photo: bool) -> bytes:
    if photo:
        if index != 0:
            raise ApiProblem(404, "Not Found", "a photo has only frame 0")
        return photo_jpeg(path, limits)
    jpeg = frames.video_frame(path, limits, index)
    if jpeg is None:
        raise ApiProblem(404, "Not Found", "no such frame")
    return jpeg


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiProblem(413, "Content Too Large", f"shapes are limited to {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiProblem(413, "Content Too Large", f"shapes are limited to {limit} bytes")
    return bytes(body)


def editor_router() -> APIRouter:
    """The editor's routes; ``build_app`` includes them (not in the OpenAPI document: not for programs)."""
    router = APIRouter(prefix="/review", include_in_schema=False)
    frames = FrameCache()
    static = {name: (resources.files(__package__) / "static" / name).read_bytes() for name in STATIC}

    @router.get("")
    def root() -> Response:
        return RedirectResponse("/review/", status_code=308, headers=HEADERS)

    # The three static files are the same for everyone and hold no data; they are what a browser
    # loads before it has a token to send. Every /review/api route needs the token.
    @router.get("/")
    def index() -> Response:
        return Response(static["index.html"], media_type=STATIC["index.html"], headers=HEADERS)

    @router.get("/{name}", name="editor_static")
    def asset(name: str) -> Response:
        if name not in STATIC or name == "index.html":
            raise ApiProblem(404, "Not Found", "no such file")
        return Response(static[name], media_type=STATIC[name], headers=HEADERS)

    @router.get("/api/me")
    def me(who: Who) -> Response:
        return _json({"operator": who.operator, "source": who.may_view_source})

    @router.get("/api/queue")
    def queue(who: Who, s: Svc) -> Response:
        now = time.time()
        with _store(s) as store:
            return _json([_describe(s, store, r, now, full=False) for r in store.waiting()])

    @router.get("/api/jobs/{job_id}")
    def job(job_id: str, who: Who, s: Svc) -> Response:
        with _store(s) as store:
            return _json(_describe(s, store, _review(store, job_id), time.time(), full=True))

    @router.get("/api/jobs/{job_id}/frames/{index}")
    def frame(job_id: str, index: int, who: Who, s: Svc) -> Response:
        with _store(s) as store:
            review = _review(store, job_id)
            copy, limits = _held_copy(s, store, review)
            photo = _describe(s, store, review, 0, full=False)["kind"] == "image"
        if index < 0:
            raise ApiProblem(404, "Not Found", "no such frame")
        return Response(_frame(frames, copy, limits, index, photo), media_type="image/jpeg", headers=HEADERS)

    @router.get("/api/jobs/{job_id}/source/{index}")
    def source(job_id: str, index: int, who: Who, s: Svc) -> Response:
        if not who.may_view_source:
            raise AuthError(403, f"the token lacks the scope {REVIEW_SOURCE}", error="insufficient_scope")

        with _store(s) as store:
            review = _review(store, job_id)
            _, limits = _held_copy(s, store, review)
            photo = _describe(s, store, review, 0, full=False)["kind"] == "image"
        job = s.inbox.job(job_id)
        if job is None or index < 0:
            raise ApiProblem(404, "Not Found", "no such frame")
        try:
            src = resolve_inside(s.inbox.folder(review.folder).input, job.rel_path)
            st = os.lstat(src)
        except (OSError, KeyError):
            raise ApiProblem(409, "Conflict", "the source is no longer in place") from None
        if (st.st_size, st.st_mtime_ns, st.st_ino) != (job.size, job.mtime_ns, job.inode):
            raise ApiProblem(409, "Conflict", "the source changed since the job read it")
        # Every view of a source is on the record before a pixel of it leaves the server.
        s.inbox.audit(review_record(job_id, "source-viewed", time.time(), operator=who.operator, frame=index))
        s.log.info("review.source_viewed", job_id=job_id, operator=who.operator, frame=index)
        return Response(_frame(frames, src, limits, index, photo), media_type="image/jpeg", headers=HEADERS)

    async def _checked(request: Request, s: ApiService, job_id: str) -> tuple[Review, Any]:
        body = await _read_body(request, MAX_BODY_BYTES)

        def check() -> tuple[Review, Any]:
            with _store(s) as store:
                review = _review(store, job_id)
                d = _describe(s, store, review, 0, full=True)
            if not d["width"] or not d["height"]:
                raise ApiProblem(409, "Conflict", "the held output's size is not known (no QA report)")
            return review, check_shapes(
                body, width=int(d["width"]), height=int(d["height"]), photo=d["kind"] == "image",
                frames=d["frames"], duration_s=d["duration_s"],
            )  # fmt: skip

        return await run_in_threadpool(check)

    @router.post("/api/jobs/{job_id}/check")
    async def check(request: Request, job_id: str, who: Who, s: Svc) -> Response:
        _, checked = await _checked(request, s, job_id)
        return _json({"ok": not checked.errors, "errors": list(checked.errors)})

    def _decide(s: ApiService, job_id: str, decision: str, who: Reviewer, masks_yaml: str | None) -> Response:
        with _store(s) as store:
            _review(store, job_id)
            outcome = store.decide(job_id, decision, who.operator, time.time(), masks_yaml)
        if outcome != "recorded":
            raise ApiProblem(409, "Conflict", f"nothing to decide: the review is {outcome}")
        action = "rejected-rerun" if masks_yaml is not None else decision
        s.log.info("review.editor_decision", job_id=job_id, action=action, operator=who.operator)
        return _json({"job_id": job_id, "decision": action, "operator": who.operator, "recorded": True})

    @router.post("/api/jobs/{job_id}/apply")
    async def apply(request: Request, job_id: str, who: Who, s: Svc) -> Response:
        _, checked = await _checked(request, s, job_id)
        if checked.errors:
            return _json({"ok": False, "errors": list(checked.errors)}, 422)
        return await run_in_threadpool(_decide, s, job_id, "rejected", who, checked.yaml_text)

    @router.post("/api/jobs/{job_id}/approve")
    def approve(job_id: str, who: Who, s: Svc) -> Response:
        return _decide(s, job_id, "approved", who, None)

    @router.post("/api/jobs/{job_id}/reject")
    def reject(job_id: str, who: Who, s: Svc) -> Response:
        return _decide(s, job_id, "rejected", who, None)

    return router
