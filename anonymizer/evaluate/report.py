"""Turn a SetResult into figures: a JSON-able summary, a human table and the list of failures."""

from __future__ import annotations

import json
import math
from typing import Any

from anonymizer.evaluate import metrics
from anonymizer.evaluate.runner import BoxOutcome, SetResult


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _group_stats(boxes: list[BoxOutcome]) -> dict[str, Any]:
    n = len(boxes)
    return {
        "labelled": n,
        "recall": _round(metrics.ratio(sum(b.detected for b in boxes), n)),
        "hidden": _round(metrics.ratio(sum(b.hidden for b in boxes), n)),
    }


def failure_record(box: BoxOutcome) -> dict[str, Any]:
    """One labelled box that was not hidden, as a reviewer needs it: image, box, why."""
    return {
        "image": box.image,
        "box": list(box.box),
        "class": box.class_name,
        "group": box.group or None,
        "size_px": round(box.size_px, 1),
        "detected": box.detected,
        "retained": None if math.isnan(box.retained) else round(box.retained, 3),
        "changed": round(box.changed, 3),
    }


def summarize(result: SetResult) -> dict[str, Any]:
    """Return the JSON-able figures of one set: per class and size bucket, collateral, speed, failures."""
    classes: dict[str, Any] = {}
    for name in result.classes:
        boxes = [b for b in result.boxes if b.class_name == name]
        complete = [im for im in result.images if im.false_positives.get(name) is not None]
        complete_names = {im.image for im in complete}
        tp = sum(b.detected for b in boxes if b.image in complete_names)
        fp = sum(im.false_positives[name] or 0 for im in complete)
        stats = _group_stats(boxes)
        stats["precision"] = _round(metrics.ratio(tp, tp + fp)) if complete else None
        stats["precision_images"] = len(complete)
        stats["by_size"] = {
            bucket: _group_stats([b for b in boxes if b.bucket == bucket])
            for bucket in metrics.SIZE_BUCKETS
            if any(b.bucket == bucket for b in boxes)
        }
        groups = sorted({b.group for b in boxes if b.group})
        if groups:
            stats["by_group"] = {g: _group_stats([b for b in boxes if b.group == g]) for g in groups}
        classes[name] = stats
    changed = sum(im.collateral_changed for im in result.images)
    total = sum(im.collateral_total for im in result.images)
    seconds = sum(im.seconds for im in result.images)
    megapixels = sum(im.megapixels for im in result.images)
    return {
        "set": result.set_name,
        "half": result.half,
        "images": len(result.images),
        "profile": {"name": result.profile_name, "sha256": result.profile_sha256},
        "models": result.models,
        "definitions": {
            "iou_threshold": metrics.IOU_THRESHOLD,
            "size": "sqrt(width*height) px",
            "hidden": f"retained detail <= {metrics.HIDDEN_MAX_RETAINED}",
            "collateral_dilation": f"{metrics.DILATE_FRACTION} of box side, min {metrics.DILATE_MIN_PX} px",
        },
        "classes": classes,
        "collateral": _round(metrics.ratio(changed, total), 5),
        "seconds": round(seconds, 3),
        "megapixels": round(megapixels, 3),
        "seconds_per_megapixel": _round(metrics.ratio(seconds, megapixels), 4),
        "failures": [failure_record(b) for b in result.boxes if not b.hidden],
        "possibly_unlabelled": [
            {"image": im.image, "class": cls, "box": list(box), "confidence": score}
            for im in result.images
            for cls, box, score in im.unlabelled
        ],
    }


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=False)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_table(summary: dict[str, Any], *, max_failures: int = 50) -> str:
    """Return the human-readable report of one set."""
    profile = summary["profile"]
    half = summary.get("half", "all")
    title = (
        f"set {summary['set']}{'' if half == 'all' else f' ({half} half)'}: {summary['images']} images, profile {profile['name'] or '?'} "
        f"(sha256 {profile['sha256'][:12]}), {_fmt(summary['seconds_per_megapixel'])} s/megapixel"
    )
    lines = [
        title,
        "",
        f"{'class':<8}{'size px':<16}{'labelled':>9}{'recall':>9}{'hidden':>9}",
    ]
    for name, stats in summary["classes"].items():
        rows = [("all", stats)] + list(stats["by_size"].items()) + [(f"[{g}]", s) for g, s in stats.get("by_group", {}).items()]
        for label, row in rows:
            lines.append(f"{name:<8}{label:<16}{row['labelled']:>9}{_fmt(row['recall']):>9}{_fmt(row['hidden']):>9}")
        if stats["precision"] is None:
            lines.append(f"{name:<8}precision: not measured (labels incomplete)")
        else:
            lines.append(f"{name:<8}precision: {_fmt(stats['precision'])} over {stats['precision_images']} fully labelled images")
    lines.append(f"collateral: {_fmt(summary['collateral'])} of unlabelled pixels changed")
    failures = summary["failures"]
    lines.append("")
    lines.append(f"not hidden: {len(failures)} labelled boxes" + (":" if failures else ""))
    for f in failures[:max_failures]:
        box = ",".join(f"{v:g}" for v in f["box"])
        retained = "-" if f["retained"] is None else f"{f['retained']:.2f}"
        lines.append(
            f"  {f['image']}  {f['class']} [{box}] size {f['size_px']:.0f} px  "
            f"detected {'yes' if f['detected'] else 'no'}  retained {retained}"
        )
    if len(failures) > max_failures:
        lines.append(f"  ... {len(failures) - max_failures} more (use --json for all)")
    gaps = summary["possibly_unlabelled"]
    if gaps:
        # Collateral and precision count these against the profile; often the labels are what is wrong.
        lines.append("")
        lines.append(
            f"possibly unlabelled: {len(gaps)} detections scoring >= {metrics.UNLABELLED_SCORE:g} touch no label "
            "(their masks count as collateral and false positives; check the labels):"
        )
        for g in gaps[:max_failures]:
            box = ",".join(f"{v:g}" for v in g["box"])
            lines.append(f"  {g['image']}  {g['class']} [{box}] score {g['confidence']:.2f}")
        if len(gaps) > max_failures:
            lines.append(f"  ... {len(gaps) - max_failures} more (use --json for all)")
    return "\n".join(lines)
