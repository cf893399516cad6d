"""docs/openapi.json is the app's own OpenAPI document (regenerate: anonymizer api --openapi docs/openapi.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the api extra is not installed (pip install -e '.[api]')")

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_openapi_document_matches_the_app() -> None:
    from anonymizer.api.server import openapi_document

    assert json.loads(DOC.read_text(encoding="utf-8")) == openapi_document(), (
        "docs/openapi.json is stale: run `anonymizer api --openapi docs/openapi.json`"
    )


def test_every_route_documents_its_problem_responses_and_the_bearer_scheme() -> None:
    doc = json.loads(DOC.read_text(encoding="utf-8"))
    ops = {(path, method): op for path, item in doc["paths"].items() for method, op in item.items()}
    assert set(ops) == {
        ("/v1/jobs", "post"),
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/jobs/{job_id}", "delete"),
        ("/v1/jobs/{job_id}/output", "get"),
    }
    for key, op in ops.items():
        assert {"401", "403", "404", "429"} <= set(op["responses"]), key
        assert "application/problem+json" in op["responses"]["401"]["content"], key
        assert op.get("security") == [{"HTTPBearer": []}], key
    assert "multipart/form-data" in ops[("/v1/jobs", "post")]["requestBody"]["content"]
