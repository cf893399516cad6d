"""The job API over real HTTP: submit, poll, fetch, delete; tokens, scopes, ownership, limits,
and uploads that are hostile (a path in the name), too large or cut off."""

from __future__ import annotations

import hashlib
import socket
import time

import daemon_helpers as dh
import pytest
from api_helpers import AUDIENCE, MAX_ACTIVE, MAX_UPLOAD, RATE_PER_MINUTE, Api, rsa_key

PHOTO = dh.FACE_SAMPLES[0].read_bytes() if dh.FACE_SAMPLES else b""
pytestmark = pytest.mark.skipif(not PHOTO, reason="sample photos are missing")


def variant(i: int) -> bytes:
    """The sample photo with ``i`` trailing bytes after its end marker: same picture, new content hash."""
    return PHOTO + b"\0" * i


def files_in(api: Api) -> list[str]:
    return [p.relative_to(api.root).as_posix() for p in api.root.rglob("*") if p.is_file()]


def leftovers(api: Api) -> list[str]:
    """Files under the inbox's api/ folder: dot-named partial uploads included."""
    return sorted(p.name for p in (api.inbox / "in").rglob("*") if p.is_file())


def test_a_photo_is_anonymized_fetched_with_its_sha256_and_deleted(api: Api) -> None:
    token = api.token("dam-happy")
    r = api.submit(token, variant(1), name="Jane Doe at the gate.jpg")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running", "done")
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["input"] == {"sha256": hashlib.sha256(variant(1)).hexdigest(), "size": len(variant(1))}

    done = api.wait_done(token, job["id"])
    assert done["state"] == "done", done
    assert done["counts"]["face"]["regions"] >= 1  # the sample shows faces
    assert "xyxy" not in str(done) and "boxes" not in str(done)

    with api.client(token) as c:
        out = c.get(f"/v1/jobs/{job['id']}/output")
    assert out.status_code == 200
    sha = hashlib.sha256(out.content).hexdigest()
    assert out.headers["x-content-sha256"] == sha == done["output"]["sha256"]
    assert out.content != variant(1)  # anonymized, not an echo of the upload
    assert out.content[:2] == b"\xff\xd8"  # still a JPEG

    # The same content again: the same job, nothing new queued.
    again = api.submit(token, variant(1), name="another name.jpg")
    assert again.status_code == 200 and again.json()["id"] == job["id"]

    # The folder's retention (delete after 0 s) removes the upload once the output is recorded.
    dh.wait_for(lambda: not leftovers(api) or None, 30, "retention to remove the upload")

    with api.client(token) as c:
        assert c.delete(f"/v1/jobs/{job['id']}").status_code == 204
        gone = c.get(f"/v1/jobs/{job['id']}")
        assert gone.status_code == 404
        assert gone.headers["content-type"] == "application/problem+json"
        assert c.get(f"/v1/jobs/{job['id']}/output").status_code == 404
    assert not [p for p in (api.inbox / "out").rglob("*") if p.is_file()]  # the output is gone too

    audit = dh.audit_lines(api.root / "audit")
    submit = [a for a in audit if a.get("event") == "api.submit" and a["api_job_id"] == job["id"]]
    delete = [a for a in audit if a.get("event") == "api.delete" and a["api_job_id"] == job["id"]]
    assert len(submit) == 1 and submit[0]["client_id"] == "dam-happy"
    assert len(delete) == 1 and delete[0]["output_removed"] is True
    daemon_job = [a for a in audit if a.get("event") == "job" and a["job_id"] == submit[0]["job_id"]]
    assert daemon_job and daemon_job[0]["outcome"] == "anonymized"  # the daemon's own audit line
    result = dh.run_cli("audit", "verify", "--config", str(api.daemon.config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_delete_removes_a_kept_upload_and_its_output(api: Api) -> None:
    token = api.token("dam-keep")
    r = api.submit(token, variant(8), profile="keep")
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert api.wait_done(token, job_id)["state"] == "done"
    kept_in = [p for p in (api.root / "api-keep" / "in").rglob("*") if p.is_file()]
    kept_out = [p for p in (api.root / "api-keep" / "out").rglob("*") if p.is_file()]
    assert len(kept_in) == 1 and len(kept_out) == 1  # the profile keeps the source
    with api.client(token) as c:
        assert c.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not kept_in[0].exists() and not kept_out[0].exists()
    (line,) = [
        a for a in dh.audit_lines(api.root / "audit") if a.get("api_job_id") == job_id and a["event"] == "api.delete"
    ]
    assert line["source_removed"] is True and line["output_removed"] is True


@pytest.mark.parametrize(
    "how",
    ["none", "garbage", "expired", "wrong audience", "wrong issuer", "foreign key", "no exp"],
)
def test_a_request_without_a_valid_token_is_refused_with_401(api: Api, how: str) -> None:
    tokens = {
        "none": None,
        "garbage": "not.a.jwt",
        "expired": api.token("dam-x", exp=int(time.time()) - 3600),
        "wrong audience": api.token("dam-x", aud="someone-else"),
        "wrong issuer": api.token("dam-x", iss="https://evil.test"),
        "foreign key": api.token("dam-x", key=rsa_key()),
        "no exp": api.token("dam-x", exp=None),
    }
    with api.client(tokens[how]) as c:
        r = c.get("/v1/jobs/a-000000000000000000000000")
    assert r.status_code == 401, (how, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert AUDIENCE not in r.json()["detail"] or how == "wrong audience"
    assert "/" not in r.json()["detail"]  # no internal path


def test_a_token_without_the_scope_gets_403_and_another_clients_job_reads_as_missing(api: Api) -> None:
    owner = api.token("dam-owner")
    r = api.submit(owner, variant(2))
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]

    read_only = api.token("dam-owner", scope="jobs:read")
    assert api.submit(read_only, variant(3)).status_code == 403
    with api.client(api.token("dam-owner", scope="")) as c:
        assert c.get(f"/v1/jobs/{job_id}").status_code == 403

    other = api.token("dam-other")
    with api.client(other) as c:
        for method, path in (("GET", ""), ("GET", "/output"), ("DELETE", "")):
            resp = c.request(method, f"/v1/jobs/{job_id}{path}")
            assert resp.status_code == 404, (method, path, resp.text)
    with api.client(api.token("ops", scope="jobs:admin")) as c:
        assert c.get(f"/v1/jobs/{job_id}").json()["id"] == job_id  # admin sees every client's jobs
    # The same content from another client is another job (its own id, its own owner).
    mine = api.submit(other, variant(2))
    assert mine.status_code == 202 and mine.json()["id"] != job_id
    api.wait_done(owner, job_id)
    assert api.wait_done(other, mine.json()["id"])["state"] == "done"


def test_a_path_in_the_upload_name_is_ignored(api: Api) -> None:
    token = api.token("dam-traversal")
    name = "../../../../etc/cron.d/owned-by-upload.jpg"
    r = api.submit(token, variant(4), name=name)
    assert r.status_code == 202, r.text
    assert api.wait_done(token, r.json()["id"])["state"] == "done"
    assert not any("owned-by-upload" in f for f in files_in(api))
    assert not (api.root.parent / "etc").exists()
    inbox_names = [p.relative_to(api.inbox / "in").parts for p in (api.inbox / "in").rglob("*")]
    assert all(parts[0] == "api" for parts in inbox_names)


def test_an_unknown_profile_or_a_non_media_upload_is_refused_and_nothing_kept(api: Api) -> None:
    token = api.token("dam-bad")
    r = api.submit(token, variant(5), profile="../fast")
    assert r.status_code == 400 and "fast" in r.json()["detail"]
    r = api.submit(token, b"#!/bin/sh\necho not a photo\n" * 10, name="notes-of-anna.jpg")
    assert r.status_code == 415, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert not [n for n in leftovers(api) if n.startswith(".")]


def test_an_oversized_upload_gets_413_and_leaves_nothing(api: Api) -> None:
    token = api.token("dam-big")
    api.names.append("big-upload-of-bob.jpg")
    big = variant(MAX_UPLOAD + 1)
    assert api.submit(token, big).status_code == 413  # refused on Content-Length, before the body

    def chunks():  # no Content-Length: refused while streaming, once the limit is passed
        for start in range(0, len(big), 256 * 1024):
            yield big[start : start + 256 * 1024]

    boundary = "xyzboundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big-upload-of-bob.jpg"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():
        yield head
        yield from chunks()
        yield tail

    with api.client(token) as c:
        r = c.post(
            "/v1/jobs",
            params={"profile": "fast"},
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert r.status_code == 413, r.text
    assert not [n for n in leftovers(api) if n.startswith(".")]


def raw_upload(api: Api, token: str, *, declared: int, send: bytes) -> socket.socket:
    """Open a POST that declares ``declared`` body bytes and sends only ``send``; return the socket."""
    host, port = api.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = (
        f"POST /v1/jobs?profile=fast HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + send)
    return sock


def test_truncated_uploads_get_400_or_are_dropped_and_concurrency_is_limited(api: Api) -> None:
    token = api.token("dam-cut")
    api.names.append("cut-upload-of-carol.jpg")
    part = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="cut-upload-of-carol.jpg"\r\n\r\n'
    # The body ends (as declared) before the closing boundary: 400, as problem+json.
    body = part + PHOTO[:20000]
    sock = raw_upload(api, token, declared=len(body), send=body)
    reply = sock.recv(65536).decode(errors="replace")
    sock.close()
    assert reply.startswith("HTTP/1.1 400"), reply[:200]
    assert "application/problem+json" in reply

    # Uploads still in flight count towards the client's limit of unfinished jobs.
    open_uploads = [
        raw_upload(api, token, declared=len(PHOTO) + 500, send=part + PHOTO[:5000]) for _ in range(MAX_ACTIVE)
    ]
    time.sleep(0.5)
    assert api.submit(token, variant(6)).status_code == 429
    assert api.submit(api.token("dam-other-client"), variant(6)).status_code == 202  # limits are per client
    for sock in open_uploads:  # the connections drop mid-upload
        sock.close()
    dh.wait_for(lambda: not [n for n in leftovers(api) if n.startswith(".")] or None, 10, "partial uploads removed")
    assert api.submit(token, variant(7)).status_code == 202


def test_a_client_over_its_request_rate_gets_429_with_retry_after(api: Api) -> None:
    codes = []
    with api.client(api.token("dam-burst", scope="jobs:read")) as c:
        # A burst of the bucket's size passes; tokens refill at RATE/60 per second, so a loaded
        # machine may get a few more through before the first 429.
        for _ in range(3 * RATE_PER_MINUTE):
            codes.append(c.get("/v1/jobs/a-000000000000000000000000"))
            if codes[-1].status_code == 429:
                break
    assert codes[-1].status_code == 429
    assert len(codes) > RATE_PER_MINUTE and {r.status_code for r in codes[:-1]} == {404}
    assert int(codes[-1].headers["retry-after"]) >= 1
    with api.client(api.token("dam-calm", scope="jobs:read")) as c:
        assert c.get("/v1/jobs/a-000000000000000000000000").status_code == 404  # per client
