"""The QA report of one job: a self-contained HTML page and a JSON file, made from the output.

What a reviewer needs to judge an output quickly: a timeline per class (where masks came from a
detection, a track's interpolation or guess, the operator's manual regions, or where an exclusion
removed one), a contact sheet of output frames sampled over the clip plus the frames where a leak
is most likely, the counts, and the settings and model hashes.

Only anonymized pixels: every picture is decoded from the OUTPUT file, never the source, and the
page names no file unless the caller passes one (the profile's ``privacy.log_file_names``). The
page loads nothing: pictures are JPEG ``data:`` URIs, the timeline inline SVG.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from anonymizer.config import LimitsSpec, Profile
from anonymizer.media.sniff import sniff
from anonymizer.media.video import iter_frames

REPORT_FORMAT = "anonymizer-qa/1"
THUMB_MAX_SIDE = 320
SAMPLED_FRAMES = 12
COLORS = {
    "detected": "#2e7d32",
    "interpolated": "#81c784",
    "predicted": "#f9a825",
    "excluded": "#c62828",
    "manual": "#1565c0",
}


def build_report(
    output: Path,
    summary: dict[str, Any],
    timeline: dict[str, Any] | None,
    leak_frames: list[dict[str, Any]],
    profile: Profile,
    *,
    job_id: str | None = None,
    file_name: str | None = None,
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Return (the report's JSON, [(contact sheet entry, JPEG bytes)]) for one output file.

    Args:
        output: the anonymized file (photo or video); the only pixels the report shows.
        summary: the engine's ``JobResult.summary()``.
        timeline: ``Timeline.as_dict()`` (None: no per-frame provenance, e.g. a reused output).
        leak_frames: ``Timeline.leak_frames()``: [{"frame": n, "why": [...]}].
        file_name: shown only when given (the profile opts in to file names).
    """
    frames = int(summary.get("frames") or 1)
    picks: dict[int, list[str]] = {}
    for f in np.linspace(0, frames - 1, min(SAMPLED_FRAMES, frames)).round().astype(int).tolist():
        picks.setdefault(int(f), []).append("sample")
    for item in leak_frames:
        if 0 <= item["frame"] < frames:
            picks.setdefault(int(item["frame"]), []).extend(item["why"])
    thumbs = _thumbnails(output, sorted(picks), profile.limits)
    duration = float(summary.get("duration_s") or 0.0)
    sheet = []
    for f, jpeg in thumbs:
        entry = {"frame": f, "time_s": round(f * duration / frames, 3) if frames > 1 else 0.0, "why": sorted(set(picks[f]))}
        sheet.append((entry, jpeg))
    report = {
        "format": REPORT_FORMAT,
        "job_id": job_id,
        **({"file": file_name} if file_name else {}),
        "output": {"sha256": _sha256(output), "size": output.stat().st_size},
        **{k: summary[k] for k in ("kind", "width", "height", "frames", "duration_s", "audio", "counts") if k in summary},
        **{k: summary[k] for k in ("manual", "exclusions") if k in summary},
        "profile_sha256": profile.sha256,
        "models": [{"id": m.get("id"), "sha256": m.get("sha256")} for m in summary.get("models", [])],
        "settings": profile.to_dict(),
        "timeline": timeline,
        "leak_frames": leak_frames,
        "contact_sheet": [entry for entry, _ in sheet],
    }
    return report, sheet


def write_report(folder: Path, stem: str, report: dict[str, Any], sheet: list[tuple[dict[str, Any], bytes]]) -> tuple[Path, Path]:
    """Write ``<stem>.qa.html`` and ``<stem>.qa.json`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    html_path, json_path = folder / f"{stem}.qa.html", folder / f"{stem}.qa.json"
    json_path.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    html_path.write_text(render_html(report, sheet), encoding="utf-8")
    return html_path, json_path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _thumbnails(output: Path, wanted: list[int], limits: LimitsSpec) -> list[tuple[int, bytes]]:
    """JPEG thumbnails of the output's frames ``wanted`` (one decode of the output)."""
    if sniff(output).kind == "image":
        # Imported here: OpenCV only for a photo's thumbnail.
        from anonymizer.media.image import read_photo

        return [(0, _jpeg(read_photo(output, limits).rgb))]

    want, out = set(wanted), []
    for decoded in iter_frames(output, limits):
        if decoded.index in want:
            out.append((decoded.index, _jpeg(decoded.rgb())))
            if len(out) == len(want):
                break
    return out


def _jpeg(rgb: np.ndarray) -> bytes:
    im = Image.fromarray(rgb)
    scale = THUMB_MAX_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def timeline_svg(timeline: dict[str, Any] | None, marks: list[int], width: int = 960) -> str:
    """An inline SVG: one row per class and one for manual regions, runs coloured by kind, and
    ticks where the contact sheet shows a frame."""
    if not timeline or not timeline.get("frames"):
        return '<p class="none">No per-frame provenance for this job.</p>'
    frames = int(timeline["frames"])
    label_w, row_h, top = 70, 22, 6
    rows = list(timeline["rows"].items())
    plot_w = width - label_w - 10
    height = top + row_h * len(rows) + 26

    def x(f: float) -> float:
        return label_w + plot_w * f / frames

    parts = [f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="timeline">']
    for r, (name, runs) in enumerate(rows):
        y = top + r * row_h
        parts.append(f'<text x="0" y="{y + 15}" class="row">{html.escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{plot_w}" height="{row_h - 6}" fill="#eeeeee"/>')
        # Lighter kinds first, so a detection drawn later shows on top of a guess on its frame.
        order = {"predicted": 0, "interpolated": 1, "manual": 2, "detected": 3, "excluded": 4}
        for start, length, kind in sorted(runs, key=lambda run: order.get(run[2], 0)):
            w = max(plot_w * length / frames, 1.0)
            parts.append(
                f'<rect class="run {kind}" x="{x(start):.2f}" y="{y + 2}" width="{w:.2f}" height="{row_h - 6}" '
                f'fill="{COLORS.get(kind, "#999")}"><title>{kind}: frames {start}-{start + length - 1}</title></rect>'
            )
    axis_y = top + row_h * len(rows) + 4
    for f in marks:
        parts.append(f'<line x1="{x(f + 0.5):.2f}" y1="{axis_y}" x2="{x(f + 0.5):.2f}" y2="{axis_y + 6}" stroke="#333"/>')
    for f in (0, frames - 1):
        parts.append(f'<text x="{x(f):.2f}" y="{axis_y + 18}" class="axis">{f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: dict[str, Any], sheet: list[tuple[dict[str, Any], bytes]]) -> str:
    esc = html.escape
    title = f"QA report · job {report['job_id']}" if report.get("job_id") else "QA report"
    if report.get("file"):
        title += f" · {report['file']}"
    legend = "".join(f'<span class="key" style="background:{c}"></span>{k} ' for k, c in COLORS.items())
    counts = report.get("counts") or {}
    facts = [
        (
            f"{report.get('kind', '?')}, {report.get('width', '?')}x{report.get('height', '?')}, "
            f"{report.get('frames', '?')} frame(s), {report.get('duration_s', 0)} s"
        ),
        *(f"{name}: {c.get('regions', 0)} masked regions on {c.get('masked_frames', 0)} frames, "
          f"{c.get('tracks', 0)} tracks" for name, c in counts.items()),
    ]
    if "manual" in report:
        m = report["manual"]
        facts.append(f"manual regions: {m['regions']} in the sidecar, masked on {m['frames']} frames")
    if "exclusions" in report:
        e = report["exclusions"]
        facts.append(
            f"exclusions: {e['rules']} in the sidecar removed {e['removed']} detections on {e['frames']} frames "
            f"(sidecar SHA-256 {', '.join(s[:16] for s in e['sidecar_sha256'])})"
        )
    figures = []
    for entry, jpeg in sheet:
        uri = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
        leak = any(w != "sample" for w in entry["why"])
        figures.append(
            f'<figure class="{"leak" if leak else "sample"}" data-frame="{entry["frame"]}">'
            f'<img alt="output frame {entry["frame"]}" src="{uri}">'
            f'<figcaption>frame {entry["frame"]} · {entry["time_s"]} s<br>{esc("; ".join(entry["why"]))}</figcaption></figure>'
        )
    models = "".join(f"<li>{esc(str(m['id']))}: <code>{esc(str(m['sha256']))}</code></li>" for m in report.get("models", []))
    settings = esc(json.dumps(report.get("settings"), indent=1, sort_keys=True))
    svg = timeline_svg(report.get("timeline"), [entry["frame"] for entry, _ in sheet])
    # A long clip's timeline comes in steps of several frames (anonymizer.stream.timeline.MAX_BINS).
    step = int((report.get("timeline") or {}).get("frames_per_bin") or 1)
    step_note = f" · in steps of {step} frames: a step shows every kind any of its frames had" if step > 1 else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{esc(title)}</title>
<style>
body {{ font: 14px/1.4 sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; }} h2 {{ font-size: 1.1em; margin-top: 1.5em; }}
.row, .axis {{ font: 12px sans-serif; }}
.key {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 10px; vertical-align: middle; }}
#sheet {{ display: flex; flex-wrap: wrap; gap: 8px; }}
figure {{ margin: 0; padding: 4px; border: 2px solid #ccc; }}
figure.leak {{ border-color: #c62828; }}
figcaption {{ font-size: 12px; max-width: {THUMB_MAX_SIDE}px; }}
pre {{ background: #f5f5f5; padding: 8px; max-height: 20em; overflow: auto; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p>Every picture here is decoded from the anonymized output (SHA-256 <code>{esc(report['output']['sha256'])}</code>), never from the source.</p>
<ul>{"".join(f"<li>{esc(f)}</li>" for f in facts)}</ul>
<h2>Timeline</h2>
<p>{legend}{step_note}</p>
{svg}
<h2>Contact sheet</h2>
<p>Frames sampled over the clip, and (red border) frames where a leak is most likely. <span id="self-check"></span></p>
<div id="sheet">{"".join(figures)}</div>
<h2>Settings and models</h2>
<p>Profile SHA-256 <code>{esc(report['profile_sha256'])}</code></p>
<ul>{models}</ul>
<pre>{settings}</pre>
<script>
// Say on the page whether every picture decoded: a reviewer must not take a broken one for a clean frame.
window.addEventListener("load", function () {{
  var imgs = document.querySelectorAll("#sheet img"), ok = 0;
  imgs.forEach(function (i) {{ if (i.complete && i.naturalWidth > 0) ok++; }});
  var runs = document.querySelectorAll("#timeline rect.run");
  var drawn = 0;
  runs.forEach(function (r) {{ if (r.getBBox().width > 0) drawn++; }});
  var el = document.getElementById("self-check");
  el.dataset.images = imgs.length; el.dataset.decoded = ok; el.dataset.runs = runs.length; el.dataset.drawn = drawn;
  el.textContent = ok + " of " + imgs.length + " pictures shown; " + drawn + " timeline runs drawn.";
}});
</script>
</body></html>
"""


def write_job_report(
    output: Path, summary: dict[str, Any], profile: Profile, folder: Path, stem: str, *,
    job_id: str | None = None, file_name: str | None = None,
) -> tuple[Path, Path]:
    """Write the report of one output from its job summary (``JobResult.summary()``, whose
    ``provenance`` holds the timeline); return the HTML and JSON paths."""
    provenance = summary.get("provenance") or {}
    summary = {k: v for k, v in summary.items() if k != "provenance"}
    report, sheet = build_report(
        Path(output), summary, provenance.get("timeline"), provenance.get("leak_frames") or [], profile,
        job_id=job_id, file_name=file_name,
    )
    return write_report(folder, stem, report, sheet)


def report_for_result(result: Any, profile: Profile, folder: Path, stem: str, *, job_id: str | None = None,
                      file_name: str | None = None) -> tuple[Path, Path]:
    """Write the report of an engine ``JobResult`` whose output is at ``result.output_path``."""
    return write_job_report(result.output_path, result.summary(), profile, folder, stem, job_id=job_id, file_name=file_name)
