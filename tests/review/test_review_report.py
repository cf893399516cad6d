"""The QA report in a real headless Chromium (Debian's ``chromium``), and proof that it shows no
unmasked source pixels inside any labelled box."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from media_factory import decode_rgb, load_rgb, make_video
from PIL import Image
from review_media import two_faces_photo

from anonymizer.config import Profile
from anonymizer.review.report import COLORS, build_report, report_for_result, write_report
from anonymizer.review.sidecar import parse_sidecar_text

# The manual region: a labelled box whose source pixels must never appear in the report.
MANUAL_BOX = (10, 150, 110, 230)
SIDECAR = f"regions:\n  - box: {list(MANUAL_BOX)}\n    start_frame: 0\n    end_frame: 11\n"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
FIGURE = re.compile(r'<figure class="[a-z]+" data-frame="(\d+)"><img alt="[^"]*" src="data:image/jpeg;base64,([^"]+)">')


@pytest.fixture(scope="module")
def job(fast_engine, tmp_path_factory):
    """A panning clip with faces, processed with a manual region; its report and labelled boxes."""
    tmp = tmp_path_factory.mktemp("qa")
    src = make_video(tmp / "jane-doe-interview.mp4", source=load_rgb(two_faces_photo(tmp / "two.jpg")), frames=12, audio=False)
    result = fast_engine.process(src, tmp / "jane-doe-interview.anon.mp4", masks=parse_sidecar_text(SIDECAR))
    html_path, json_path = report_for_result(result, fast_engine.profile, tmp / "reports", "job-1", job_id="job-1")
    frames = decode_rgb(src)
    labelled: list[list[tuple]] = [[MANUAL_BOX] for _ in frames]
    for entry in json.loads(json_path.read_text())["contact_sheet"]:  # the faces the detector is sure of
        faces = fast_engine.detect_image(frames[entry["frame"]])
        labelled[entry["frame"]] += [tuple(b) for b in faces.xyxy[faces.confidence >= 0.5].round().astype(int).tolist()]
    return {"src": src, "result": result, "html": html_path, "json": json_path, "frames": frames, "labelled": labelled, "tmp": tmp}


def chromium(*args: str, tmp: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (scripts/test.sh installs Debian's chromium when run as root)")
    profile = tmp / f"chromium-profile-{len(list(tmp.glob('chromium-profile-*')))}"
    return subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def figures(html_text: str) -> list[tuple[int, np.ndarray]]:
    return [
        (int(f), np.array(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")))
        for f, data in FIGURE.findall(html_text)
    ]


def leaked_boxes(html_text: str, frames: list[np.ndarray], labelled: list[list[tuple]]) -> list[tuple[int, tuple]]:
    """Every (frame, box) where a report picture shows the source's pixels inside a labelled box:
    each picture is compared with its source frame, at the picture's size, inside each box."""
    leaks = []
    shown = figures(html_text)
    assert shown, "the report has no pictures"
    for index, thumb in shown:
        source = np.array(Image.fromarray(frames[index]).resize((thumb.shape[1], thumb.shape[0]), Image.Resampling.LANCZOS))
        sx, sy = thumb.shape[1] / frames[index].shape[1], thumb.shape[0] / frames[index].shape[0]
        for x1, y1, x2, y2 in labelled[index]:
            region = np.s_[int(y1 * sy) : int(y2 * sy), int(x1 * sx) : int(x2 * sx)]
            if np.abs(source[region].astype(int) - thumb[region]).mean() <= 6:
                leaks.append((index, (x1, y1, x2, y2)))
    return leaks


def test_report_shows_no_unmasked_source_pixels_inside_a_labelled_box(job):
    html_text = job["html"].read_text(encoding="utf-8")
    assert sum(len(b) - 1 for b in job["labelled"]) >= 12  # faces beside the manual box
    assert leaked_boxes(html_text, job["frames"], job["labelled"]) == []
    # Each picture is the output frame it is labelled with (so the boxes above were the right ones).
    output = decode_rgb(job["result"].output_path)
    for index, thumb in figures(html_text):
        assert np.abs(thumb.astype(int) - output[index]).mean() < 3, index
    # The same check on a report made from the source itself finds the leaks: it can fail.
    report, sheet = build_report(job["src"], job["result"].summary(), None, [], Profile())
    bad_html, _ = write_report(job["tmp"] / "bad", "bad", report, sheet)
    assert len(leaked_boxes(bad_html.read_text(encoding="utf-8"), job["frames"], job["labelled"])) >= len(sheet)


def test_report_is_self_contained_and_names_no_file(job):
    html_text = job["html"].read_text(encoding="utf-8")
    for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html_text) + re.findall(r"url\(([^)]*)\)", html_text):
        assert ref.startswith("data:"), ref
    # Pictures are inlined as base64, whose random letters can spell anything (a stronger mask
    # once made "jAnE" appear in a frame's bytes): the name is looked for in the text around them.
    text = re.sub(r"data:[^\"')\s]+", "data:", html_text)
    assert len(text) < len(html_text) / 2  # the pictures were there and are cut out
    assert "jane" not in text.lower()
    data = json.loads(job["json"].read_text())
    assert "file" not in data and "jane" not in job["json"].read_text().lower()
    assert data["frames"] == 12 and data["manual"]["frames"] == 12
    assert {m["id"] for m in data["models"]} and all(len(m["sha256"]) == 64 for m in data["models"])
    rows = data["timeline"]["rows"]
    assert rows["manual"] == [[0, 12, "manual"]]
    assert any(kind == "detected" for _, _, kind in rows["face"])
    sheet_frames = [e["frame"] for e in data["contact_sheet"]]
    assert sheet_frames == list(range(12))  # 12 samples over 12 frames: every one


def test_report_renders_timeline_and_contact_sheet_in_headless_chromium(job):
    url = job["html"].as_uri()
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", url, tmp=job["tmp"])
    assert dom.returncode == 0, dom.stderr[-2000:]
    check = re.search(r'<span id="self-check"([^>]*)>([^<]*)</span>', dom.stdout)
    assert check, "the page's own check did not run"
    attrs = dict(re.findall(r'data-(\w+)="(\d+)"', check.group(1)))
    n_pictures = len(json.loads(job["json"].read_text())["contact_sheet"])
    assert int(attrs["images"]) == int(attrs["decoded"]) == n_pictures, check.group(2)
    assert int(attrs["runs"]) == int(attrs["drawn"]) > 0, check.group(2)

    shot = job["tmp"] / "shot.png"
    run = chromium("--window-size=1000,1600", f"--screenshot={shot}", url, tmp=job["tmp"])
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    pixels = np.array(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    for kind in ("detected", "manual"):
        rgb = np.array([int(COLORS[kind][i : i + 2], 16) for i in (1, 3, 5)])
        assert np.count_nonzero(np.abs(pixels - rgb).sum(axis=1) < 12) > 200, f"no {kind} run on screen"
    # The contact sheet's pictures are on screen: many pixels of neither the page nor the timeline.
    photo_like = (np.abs(pixels - pixels.mean(axis=1, keepdims=True)).sum(axis=1) > 40).sum()
    assert photo_like > 20_000
