"""The review editor (anonymizer/review/editor) through the real daemon, the real ``anonymizer api``
and, for the operator's loop, a real browser: Debian's headless Chromium driven by Playwright.

A clip is held for review; in the browser the reviewer opens it from the queue, steps to frame 10,
draws a box there (and a moving box between two key frames, shown interpolated before saving),
sees a misfit shape refused next to it, applies, sees the re-run output masked where the box is,
approves; the published output is masked there (pixels checked) and the audit names the operator.
Every request the page makes goes to the server itself. ``ANONYMIZER_WRITE_SCREENSHOTS=1`` writes
the screenshots of docs/review.md to docs/img/.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import daemon_helpers as dh
import numpy as np
import pytest
import yaml
from media_factory import decode_rgb, make_video
from PIL import Image
from review_media import texture, two_faces_photo
from support import free_port

httpx = pytest.importorskip("httpx", reason="the api extra is not installed (pip install -e '.[api]')")
jwt = pytest.importorskip("jwt", reason="the api extra is not installed (pip install -e '.[api]')")
pytest.importorskip("fastapi", reason="the api extra is not installed (pip install -e '.[api]')")
pytest.importorskip("uvicorn", reason="the api extra is not installed (pip install -e '.[api]')")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
ISSUER, AUDIENCE, KID = "https://idp.test/realms/media", "anonymizer", "editor-test-key"
SIZE, FRAMES, FPS = (320, 240), 24, 12
CLIP_NAME = "lobby-cam-3-visitor.mp4"  # must appear nowhere in what the editor serves
PHOTO_NAME = "badge-photo-anna.jpg"
BOX = (100, 80, 180, 150)  # drawn on frame 10 (source pixels)
POLYGON = ((20, 150), (80, 150), (50, 220))  # also on frame 10
POLYGON_INSIDE = (44, 160, 56, 180)  # well inside it
KEYS = ((2, (20, 20, 60, 60)), (6, (220, 20, 260, 60)))  # a moving box: at frame 4 it is at x 120-160
OPERATOR = "dpo-7"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "img"


@dataclass
class Editor:
    url: str
    key: Any
    root: Path
    config: Path
    out: Path
    job_id: str
    photo_id: str

    def token(self, scope: str = "review", sub: str = OPERATOR, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "client_id": "review-ui", "scope": scope,
                "iat": now, "exp": now + 600, **claims}  # fmt: skip
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": KID})

    def get(self, path: str, token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.url + path, headers=headers, timeout=60)


def _key_and_jwks() -> tuple[Any, dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return key, {"keys": [jwk | {"kid": KID, "use": "sig", "alg": "RS256"}]}


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Editor]:
    root = tmp_path_factory.mktemp("editor")
    key, jwks = _key_and_jwks()
    (root / "jwks.json").write_text(json.dumps(jwks))
    profile = dh.write_fast_profile(root / "fast.yaml", retention={"source": "keep"})
    profile.write_text(yaml.safe_dump({**yaml.safe_load(profile.read_text()), "review": "required"}))
    port = free_port()
    config = dh.write_daemon_config(
        root / "daemon.yaml",
        [dh.folder_entry(root, "cams", profile)],
        api={"listen": f"127.0.0.1:{port}", "jwks_file": str(root / "jwks.json"), "issuer": ISSUER,
             "audience": AUDIENCE, "profiles": {"fast": "cams"}},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    daemon = dh.DaemonProcess(config, root)
    proc = None
    try:
        daemon.start()
        with open(root / "api.stdout", "wb") as out, open(root / "api.stderr", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "anonymizer", "api", "--config", str(config)],
                cwd=dh.REPO,
                stdout=out,
                stderr=err,
            )
        # A still, faceless clip: the detector finds nothing, so every masked pixel is the reviewer's.
        clip = make_video(
            root / "clip.mp4", source=texture(SIZE), frames=FRAMES, size=SIZE, fps=FPS, audio=False, pan=False
        )
        shutil.copyfile(clip, root / "cams" / "in" / CLIP_NAME)
        two_faces_photo(root / "cams" / "in" / PHOTO_NAME)
        handle = Editor(url, key, root, config, root / "cams" / "out", "", "")

        def held() -> dict[str, str] | None:
            if proc.poll() is not None:
                raise AssertionError("anonymizer api exited early:\n" + (root / "api.stderr").read_text())
            try:
                rows = handle.get("/review/api/queue", handle.token()).json()
            except httpx.TransportError:
                return None
            return {r["kind"]: r["job_id"] for r in rows} if len(rows) == 2 else None

        ids = dh.wait_for(held, 120, "the clip and the photo to be held for review", interval_s=0.3)
        handle.job_id, handle.photo_id = ids["video"], ids["image"]
        yield handle
    finally:
        dh.stop_process(proc, 20)
        daemon.stop()
        daemon.close()


def _audit(editor: Editor) -> list[dict[str, Any]]:
    return [r for r in dh.audit_lines(editor.root / "audit") if r.get("event") == "review"]


def test_editor_routes_need_the_review_scope_and_show_a_source_only_with_its_own_audited_scope(editor: Editor) -> None:
    job = editor.job_id
    frame = f"/review/api/jobs/{job}/frames/3"
    # No token, a broken one, another audience: 401. A job-API token, even admin: 403.
    assert editor.get("/review/api/queue", None).status_code == 401
    assert editor.get(frame, "not-a-jwt").status_code == 401
    assert editor.get(frame, editor.token(aud="someone-else")).status_code == 401
    for scope in ("jobs:read", "jobs:admin jobs:submit jobs:read"):
        assert editor.get("/review/api/queue", editor.token(scope)).status_code == 403
        assert editor.get(frame, editor.token(scope)).status_code == 403
    assert editor.get("/review/api/me", editor.token(sub="Jane Doe")).status_code == 403  # no id for the audit

    # The page itself loads without a token (a browser has none to send yet) and holds no data.
    page = editor.get("/review/", None)
    assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'self'")
    assert job not in page.text and "<script>" not in page.text and "http" not in page.text.replace("http-equiv", "")

    token = editor.token()
    queue = editor.get("/review/api/queue", token)
    assert queue.status_code == 200 and queue.headers["content-security-policy"].startswith("default-src 'self'")
    row = next(r for r in queue.json() if r["job_id"] == job)
    assert row["kind"] == "video" and row["frames"] == FRAMES and row["rounds"] == 1 and "file" not in row
    detail = editor.get(f"/review/api/jobs/{job}", token)
    assert detail.json()["width"] == SIZE[0] and detail.json()["timeline"]["frames"] == FRAMES
    for body in (queue.text, detail.text):
        assert "lobby" not in body and "badge" not in body and "/cams/" not in body
    jpeg = editor.get(frame, token)
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"
    assert editor.get(f"/review/api/jobs/{job}/frames/{FRAMES}", token).status_code == 404
    assert editor.get("/review/api/jobs/..%2f..%2fetc/frames/0", token).status_code == 404

    # The source: only with review:source, and each view is an audit line before it is served.
    source = f"/review/api/jobs/{job}/source/5"
    assert editor.get(source, token).status_code == 403
    assert not [r for r in _audit(editor) if r["action"] == "source-viewed"]
    seen = editor.get(source, editor.token("review review:source", sub="investigator-2"))
    assert seen.status_code == 200 and seen.content[:2] == b"\xff\xd8"
    views = [r for r in _audit(editor) if r["action"] == "source-viewed"]
    assert [(v["job_id"], v["operator"], v["frame"]) for v in views] == [(job, "investigator-2", 5)]

    # Shapes are size-limited and validated by the sidecar parser, errors tied to the shape.
    check = f"{editor.url}/review/api/jobs/{job}/check"
    auth = {"Authorization": f"Bearer {token}"}
    big = httpx.post(check, headers=auth, content=b"{" + b" " * 300_000 + b"}", timeout=30)
    assert big.status_code == 413
    shapes = {"regions": [{"box": [10, 10, 50, 50], "start_frame": 3, "end_frame": 3},
                          {"box": [10, 10, 400, 50]}, {"box": [5, 5, 4, 9]}]}  # fmt: skip
    errors = httpx.post(check, headers=auth, json=shapes, timeout=30).json()["errors"]
    assert {(e["list"], e["index"]) for e in errors} == {("regions", 1), ("regions", 2)}, errors
    assert any("outside the 320x240 frame" in e["message"] for e in errors)
    assert httpx.post(check, headers=auth, json=shapes | {"regions": shapes["regions"][:1]}, timeout=30).json() == {
        "ok": True, "errors": []
    }  # fmt: skip
    assert _audit(editor)[-1]["action"] == "source-viewed"  # checking decides nothing

    # A photo: one frame, upright, and no time range in its shapes.
    photo = editor.get(f"/review/api/jobs/{editor.photo_id}/frames/0", token)
    assert photo.status_code == 200 and Image.open(io.BytesIO(photo.content)).size == (480, 300)
    assert editor.get(f"/review/api/jobs/{editor.photo_id}/frames/1", token).status_code == 404
    photo_check = f"{editor.url}/review/api/jobs/{editor.photo_id}/check"
    timed = {"regions": [{"box": [10, 10, 50, 50]}, {"box": [10, 10, 50, 50], "start_frame": 0}]}
    errors = httpx.post(photo_check, headers=auth, json=timed, timeout=30).json()["errors"]
    assert [(e["index"], "no time range" in e["message"]) for e in errors] == [(1, True)], errors


def _screenshot(page: Any, name: str) -> None:
    """A screenshot for docs/review.md, reduced to a 64-colour palette to stay small in git."""
    from PIL import Image

    path = SHOTS / name
    page.screenshot(path=str(path))
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(64, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def _launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)


def _drag(page: Any, box: tuple[int, int, int, int]) -> None:
    """Drag on the overlay canvas from one corner of ``box`` (source pixels) to the other."""
    r = page.locator("#overlay").bounding_box()
    sx, sy = r["width"] / SIZE[0], r["height"] / SIZE[1]
    page.mouse.move(r["x"] + box[0] * sx, r["y"] + box[1] * sy)
    page.mouse.down()
    page.mouse.move(r["x"] + (box[0] + box[2]) / 2 * sx, r["y"] + (box[1] + box[3]) / 2 * sy, steps=3)
    page.mouse.move(r["x"] + box[2] * sx, r["y"] + box[3] * sy, steps=3)
    page.mouse.up()


def _click_polygon(page: Any, points: tuple[tuple[int, int], ...]) -> None:
    """Click a polygon's corners on the overlay canvas; a double-click on the last closes it."""
    r = page.locator("#overlay").bounding_box()
    sx, sy = r["width"] / SIZE[0], r["height"] / SIZE[1]
    for x, y in points[:-1]:
        page.mouse.click(r["x"] + x * sx, r["y"] + y * sy)
    page.mouse.dblclick(r["x"] + points[-1][0] * sx, r["y"] + points[-1][1] * sy)


def _go(page: Any, frame: int, round_: int = 1) -> None:
    page.locator("#frame-no").fill(str(frame))
    page.locator("#frame-no").dispatch_event("change")
    page.wait_for_selector(f'#frame[data-frame="{frame}"][data-round="{round_}"]', timeout=30_000)


def _canvas_mean(page: Any, canvas: str, box: tuple[int, int, int, int], channel: int = -1) -> float:
    """Mean of the canvas's pixels inside ``box`` (all RGB channels, or one: 3 is alpha)."""
    data = page.evaluate(
        """([sel, b]) => Array.from(document.querySelector(sel).getContext('2d')
             .getImageData(b[0], b[1], b[2] - b[0], b[3] - b[1]).data)""",
        [canvas, list(box)],
    )
    px = np.asarray(data, np.float64).reshape(-1, 4)
    return float(px[:, :3].mean() if channel < 0 else px[:, channel].mean())


def _inner(box: tuple[int, int, int, int], margin: int = 6) -> tuple[int, int, int, int]:
    return box[0] + margin, box[1] + margin, box[2] - margin, box[3] - margin


def test_a_reviewer_masks_a_missed_region_in_the_browser_applies_and_approves(editor: Editor) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the browsertest extra)")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    shots = os.environ.get("ANONYMIZER_WRITE_SCREENSHOTS") == "1"
    requests: list[str] = []
    console: list[str] = []
    moving_at_4 = (120, 20, 160, 60)
    with sync_api.sync_playwright() as p:
        browser = _launch(p)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
            page.on("response", lambda r: console.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.set_default_timeout(30_000)
            page.goto(editor.url + "/review/")
            page.fill("#token", editor.token())
            page.click("#sign-in")
            page.wait_for_selector(f'#queue-table tr[data-job="{editor.job_id}"]')
            assert CLIP_NAME not in page.content()
            assert page.locator("#job").is_hidden() and page.locator("#login").is_hidden()
            if shots:
                _screenshot(page, "editor-queue.png")
            # A photo: one picture, no player, no time range to choose.
            page.click(f'#queue-table tr[data-job="{editor.photo_id}"]')
            page.wait_for_selector(f'#frame[data-job="{editor.photo_id}"][data-frame="0"]')
            assert page.locator("#transport").is_hidden() and page.locator("#range-row").is_hidden()
            assert page.locator("#job-info").inner_text().startswith("photo 480×300")
            page.click("#to-queue")
            page.locator(f'#queue-table tr[data-job="{editor.job_id}"]').click()  # a locator: the rows are redrawn
            page.wait_for_selector(f'#frame[data-job="{editor.job_id}"][data-frame="0"][data-round="1"]')

            # The QA timeline: a click jumps to its frame.
            svg = page.locator("#timeline svg").bounding_box()
            page.mouse.click(svg["x"] + 56 + (svg["width"] - 60) * 15.5 / FRAMES, svg["y"] + 8)
            page.wait_for_selector('#frame[data-frame="15"]')

            # A box and a polygon on frame 10 only, and an exclusion there (nothing to exclude).
            _go(page, 10)
            _drag(page, BOX)
            page.click('button[data-tool="polygon"]')
            _click_polygon(page, POLYGON)
            page.click('button[data-tool="exclusion"]')
            _drag(page, (240, 160, 300, 220))
            # A moving box: key boxes at frames 2 and 6, shown interpolated on frame 4 before saving.
            page.click('button[data-tool="moving"]')
            for frame, box in KEYS:
                _go(page, frame)
                _drag(page, box)
            _go(page, 4)
            assert _canvas_mean(page, "#overlay", _inner(moving_at_4), channel=3) > 0
            assert _canvas_mean(page, "#overlay", _inner(KEYS[0][1]), channel=3) == 0
            # A misfit shape (past the last frame) is refused next to it, then removed.
            page.click('button[data-tool="box"]')
            page.select_option("#range", "span")
            page.fill("#span-from", "20")
            page.fill("#span-to", "30")
            _drag(page, (200, 150, 260, 200))
            bad = page.wait_for_selector('#shapes li[data-list="regions"][data-index="3"] .error')
            assert "past the last frame" in bad.inner_text()
            _go(page, 10)
            if shots:
                _screenshot(page, "editor-draw.png")
            page.click('#shapes li[data-list="regions"][data-index="3"] button')
            page.select_option("#range", "frame")
            page.wait_for_function("document.querySelectorAll('#shapes li').length === 4")

            page.click("#apply")
            page.wait_for_selector("#status:has-text('Round 2 held')", timeout=180_000)
            masks = editor.get(f"/review/api/jobs/{editor.job_id}", editor.token()).json()["masks"]
            drawn = masks["regions"][0]
            assert drawn["start_frame"] == drawn["end_frame"] == 10
            assert np.abs(np.subtract(drawn["box"], BOX)).max() <= 2, drawn
            polygon = masks["regions"][1]
            assert polygon["start_frame"] == polygon["end_frame"] == 10 and len(polygon["polygon"]) == 3
            assert np.abs(np.subtract(polygon["polygon"], POLYGON)).max() <= 2, polygon
            assert [k["frame"] for k in masks["regions"][2]["keys"]] == [2, 6]
            excluded = masks["exclusions"][0]
            assert excluded["classes"] == ["face", "plate"] and excluded["start_frame"] == 10

            # The re-run output, as the page shows it: masked on frame 10 only, and along the moving box.
            _go(page, 10, 2)
            assert _canvas_mean(page, "#frame", _inner(BOX)) < 25
            assert _canvas_mean(page, "#frame", POLYGON_INSIDE) < 25
            _go(page, 9, 2)
            assert _canvas_mean(page, "#frame", _inner(BOX)) > 60
            assert _canvas_mean(page, "#frame", POLYGON_INSIDE) > 60
            _go(page, 4, 2)
            assert _canvas_mean(page, "#frame", _inner(moving_at_4)) < 25
            if shots:
                _screenshot(page, "editor-rerun.png")

            page.click("#approve")
            page.wait_for_selector("#status:has-text('Published')", timeout=60_000)
        finally:
            browser.close()

    # Everything the page loaded came from the server itself, and nothing broke its CSP.
    assert requests and all(u.startswith(editor.url + "/") for u in requests), requests
    assert not console, console

    published = dh.files_under(editor.out)
    assert [p.name for p in published] == [CLIP_NAME]
    frames = decode_rgb(published[0])
    assert len(frames) == FRAMES

    def mean(i: int, box: tuple[int, int, int, int]) -> float:
        x1, y1, x2, y2 = _inner(box)
        return float(frames[i][y1:y2, x1:x2].mean())

    assert mean(10, BOX) < 25 and mean(9, BOX) > 60 and mean(11, BOX) > 60
    x1, y1, x2, y2 = POLYGON_INSIDE
    assert frames[10][y1:y2, x1:x2].mean() < 25 and frames[11][y1:y2, x1:x2].mean() > 60
    assert mean(4, moving_at_4) < 25 and mean(8, moving_at_4) > 60

    actions = [(r["action"], r.get("operator")) for r in _audit(editor) if r["job_id"] == editor.job_id]
    assert [a for a in actions if a[0] != "source-viewed"] == [
        ("held", None), ("rejected-rerun", OPERATOR), ("held", None), ("approved", OPERATOR)
    ]  # fmt: skip
    job_lines = [r for r in dh.audit_lines(editor.root / "audit") if r.get("event") == "job"]
    assert [(r["job_id"], r["outcome"], r["manual"]["regions"], r["exclusions"]["rules"]) for r in job_lines] == [
        (editor.job_id, "anonymized", 3, 1)
    ]
    logs = (editor.root / "api.stdout").read_text() + dh.all_daemon_logs(editor.root)
    assert "lobby" not in logs and "badge" not in logs


def test_a_rejection_from_the_editor_closes_the_job_with_the_operator_and_is_final(editor: Editor) -> None:
    auth = {"Authorization": f"Bearer {editor.token(sub='dpo-9')}"}
    base = f"{editor.url}/review/api/jobs/{editor.photo_id}"
    rejected = httpx.post(base + "/reject", headers=auth, timeout=30)
    assert rejected.status_code == 200 and rejected.json()["operator"] == "dpo-9"

    def closed() -> bool:
        state = editor.get(f"/review/api/jobs/{editor.photo_id}", editor.token()).json()
        # Rejected: the review closed, the job retired with nothing published and its source kept.
        return state["review"] == "closed" and state["job_state"] == "retired"

    dh.wait_for(closed, 60, "the daemon to apply the rejection")
    assert httpx.post(base + "/approve", headers=auth, timeout=30).status_code == 409
    assert editor.get(f"/review/api/jobs/{editor.photo_id}/frames/0", editor.token()).status_code == 409
    assert (editor.root / "cams" / "in" / PHOTO_NAME).exists() and not (editor.out / PHOTO_NAME).exists()
    lines = [(r["action"], r.get("operator")) for r in _audit(editor) if r["job_id"] == editor.photo_id]
    assert lines == [("held", None), ("rejected", "dpo-9")]
    # The API's lines (the source view) and the daemon's share one keyed chain, still intact.
    verify = dh.run_cli("audit", "verify", "--config", str(editor.config))
    assert verify.returncode == 0, verify.stdout + verify.stderr
