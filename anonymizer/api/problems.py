"""Errors as ``application/problem+json`` (RFC 9457): a title and a detail that name no internal path."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel

PROBLEM = "application/problem+json"


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


def problem_response(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)
