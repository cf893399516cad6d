"""Where a photo's time goes: the default profile pass by pass, against deface on the same photos.

For a sample of one half of each image set (default: the tune half; the split of
``../shared/eval/README.md``), every photo goes through the product's own photo path, one stage at
a time: decode (``read_photo``), each class's cascade (``anonymizer.detect.cascade``: the cheap
pass, then the passes its cues ask for) run group by group so each (class, phase, scale, mirrored)
group is timed on its own, the plates' text cue, regions and masking, encoding (``write_photo``)
and the output's verification. The groups are the product's ``split_plan``/``plan_expensive``
passes run through ``ClassDetector.detect_passes``, exactly what ``cascade_passes`` runs (each
group scales the photo once; the product scales once per scale, a few ms). The detections are the
product's: the bench checks that they equal ``Engine.detect_image`` on the first photo of each set.

deface 1.5 (faces only, its defaults) then runs once over copies of the same photos, one process
(its start-up included, measured on its own and printed too); "deface's proxy" is one CenterFace
pass at 1x through the product's session, timed photo by photo between the stages, so it shares
their load. Ratios are the total of every stage against deface's wall time on the same photos.

    .venv/bin/python bench/photo_cost.py                                  # 3 tune photos per set
    .venv/bin/python bench/photo_cost.py --sets faces-wider --per-set 6 --also bench/profiles/x.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import Profile, load_profile  # noqa: E402
from anonymizer.detect.cascade import Cues, cheap_scales, plan_expensive, split_plan  # noqa: E402
from anonymizer.detect.multiscale import ClassDetector, Pass, zooms_out  # noqa: E402
from anonymizer.detections import Detections  # noqa: E402
from anonymizer.evaluate.labels import HALVES, half_of, read_label_set  # noqa: E402

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
SETS = ("faces-wider", "faces-masks", "plates-openalpr", "plates-uc3m-lowres")


def pick(labels: list, half: str, count: int) -> list:
    """``count`` photos of the half, evenly spread over the set (the set's order mixes its sources)."""
    chosen = [label for label in labels if half == "all" or half_of(label.image) == half]
    if len(chosen) <= count:
        return chosen
    step = len(chosen) / count
    return [chosen[int(i * step)] for i in range(count)]


def group_key(name: str, phase: str, p: Pass, detector: ClassDetector, hw: tuple[int, int]) -> str:
    fixed = getattr(detector.raw, "fixed_input", None)
    kind = "zoom-out" if zooms_out(hw[0], hw[1], p.scale, detector.spec, fixed) else f"{p.scale:g}x"
    return f"{name} {phase} {kind}{' mirrored' if p.flipped else ''}"


def timed_cascade(name: str, detector: ClassDetector, rgb: np.ndarray, cost: dict) -> Detections:
    """``anonymizer.detect.cascade.detect_cascade`` (or the full plan), one pass group at a time.

    ``cost[group] += [seconds, calls, megapixels fed]``."""
    hw = rgb.shape[:2]
    spec, rule = detector.spec, detector.spec.cascade
    plan = detector.plan(*hw)

    def run(phase: str, passes: list[Pass], threshold: float | None) -> list:
        out = []
        groups: dict[str, list[Pass]] = defaultdict(list)
        for p in passes:
            groups[group_key(name, phase, p, detector, hw)].append(p)
        for key, members in groups.items():
            t = time.perf_counter()
            out += detector.detect_passes([rgb], plans=[members], threshold=threshold)[0]
            entry = cost.setdefault(key, [0.0, 0, 0.0])
            entry[0] += time.perf_counter() - t
            entry[1] += len(members)
            entry[2] += sum((p.x1 - p.x0) * (p.y1 - p.y0) for p in members) / 1e6
        return out

    if not rule.enabled:
        return detector.merge_passes(run("full plan", plan, None))
    cheap, rest = split_plan(plan, cheap_scales(spec.scales, rule.always_scales), mirrored=rule.always_mirrored)
    floor = min(rule.cue_threshold, spec.threshold)
    cheap_out = run("cheap", cheap, floor)
    if cheap_out:
        cues = Cues(np.concatenate([o[2] for o in cheap_out]).reshape(-1, 4), np.concatenate([o[3] for o in cheap_out]))
    else:
        cues = Cues(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    out = [(s, f, xyxy[conf >= spec.threshold], conf[conf >= spec.threshold]) for s, f, xyxy, conf in cheap_out]
    expensive = plan_expensive(detector, rule, hw[0], hw[1], rest, cues)
    whole = {(p.scale, p.flipped, p.x0, p.y0, p.x1, p.y1) for p in rest}
    tiles = [p for p in expensive if (p.scale, p.flipped, p.x0, p.y0, p.x1, p.y1) in whole]
    crops = [p for p in expensive if (p.scale, p.flipped, p.x0, p.y0, p.x1, p.y1) not in whole]
    out += run("plan passes on cues", tiles, None)
    out += run("crops around cues", crops, None)
    return detector.merge_passes(out)


def photo_stages(engine, rgb_photo, cost: dict, workdir: Path) -> Detections:
    """One photo through the product's photo path, stage by stage (see the module doc)."""
    from anonymizer.detect.factory import plate_shape
    from anonymizer.detect.text import add_text_candidates, text_candidates
    from anonymizer.media.image import write_photo
    from anonymizer.media.verify import verify_output

    path, photo, decode_s = rgb_photo
    cost.setdefault("decode", [0.0, 0, 0.0])[0] += decode_s
    rgb = photo.rgb
    found = []
    for name, detector in engine.detectors.items():
        dets = timed_cascade(name, detector, rgb, cost)
        if name == "plate" and engine.text_cue is not None:
            spec = engine.profile.detect.plate_text
            t = time.perf_counter()
            xyxy, scores = engine.text_cue(rgb, spec.side)
            dets = add_text_candidates(dets, text_candidates(xyxy, scores, rgb.shape[:2], plate_shape(spec)))
            entry = cost.setdefault(f"plate text cue ({spec.side} px)", [0.0, 0, 0.0])
            entry[0] += time.perf_counter() - t
            entry[1] += 1
        found.append(dets)
    raw = Detections.merge(found)
    t = time.perf_counter()
    regions = engine.regions(raw, (rgb.shape[1], rgb.shape[0]))
    masked = engine.masker.apply(rgb.copy(), regions)
    cost.setdefault("regions + mask", [0.0, 0, 0.0])[0] += time.perf_counter() - t
    out = workdir / f"out{path.suffix}"
    t = time.perf_counter()
    write_photo(photo, masked, out, engine.profile.output)
    cost.setdefault("encode", [0.0, 0, 0.0])[0] += time.perf_counter() - t
    t = time.perf_counter()
    verify_output(out, "image", engine.profile.limits, frames=1)
    cost.setdefault("verify", [0.0, 0, 0.0])[0] += time.perf_counter() - t
    return raw


def run_deface(paths: list[Path], workdir: Path) -> tuple[float, float]:
    """(deface's wall seconds over copies of ``paths`` in one process, its start-up alone: the
    same command on one 32x32 photo)."""
    deface = shutil.which("deface") or str(Path(sys.executable).with_name("deface"))
    src = workdir / "deface-in"
    src.mkdir()
    copies = []
    for i, path in enumerate(paths):
        copies.append(src / f"{i:03d}{path.suffix.lower()}")
        shutil.copyfile(path, copies[-1])
    tiny = workdir / "tiny.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tiny)
    t = time.perf_counter()
    subprocess.run([deface, str(tiny)], check=True, capture_output=True)
    startup = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([deface, *map(str, copies)], check=True, capture_output=True)
    return time.perf_counter() - t, startup


def with_cpu(profile: Profile) -> Profile:
    return dataclasses.replace(profile, detect=dataclasses.replace(profile.detect, device="cpu"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--half", choices=HALVES, default="tune")
    parser.add_argument("--per-set", type=int, default=3, help="photos per set, evenly spread over its half")
    parser.add_argument("--profile", type=Path, default=None, help="default: the built-in default")
    parser.add_argument(
        "--also", nargs="*", type=Path, default=[], help="more profiles, timed in the same run (totals only)"
    )
    parser.add_argument("--no-deface", action="store_true", help="skip deface itself (the proxy stays)")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    args = parser.parse_args(argv)
    from anonymizer.media.memory import return_large_buffers

    return_large_buffers()  # the engine runs in this process: set up as the CLI sets up its own
    if not args.eval_dir.is_dir():
        print(f"{args.eval_dir} is absent: nothing to measure", file=sys.stderr)
        return 0

    from anonymizer.media.image import read_photo
    from anonymizer.pipeline import Engine

    base = with_cpu(load_profile(args.profile))
    engines = {"profile": Engine(base)}
    for extra in args.also:
        engines[extra.stem] = Engine(with_cpu(load_profile(extra)))
    centerface = engines["profile"].detectors["face"].raw if "face" in engines["profile"].detectors else None
    work = Path(tempfile.mkdtemp(prefix="photo-cost-"))
    try:
        photos: list[tuple[str, Path]] = []
        for name in args.sets:
            set_dir = args.eval_dir / name
            labels = read_label_set(set_dir, default_class="face" if name.startswith("faces") else "plate")
            photos += [(name, set_dir / label.image) for label in pick(labels, args.half, args.per_set)]
        costs: dict[str, dict[str, dict]] = {k: defaultdict(dict) for k in engines}
        proxy: dict[str, float] = defaultdict(float)
        mp: dict[str, float] = defaultdict(float)
        checked: set[str] = set()
        for n, (name, path) in enumerate(photos):
            t = time.perf_counter()
            photo = read_photo(path, base.limits)
            decode_s = time.perf_counter() - t
            rgb = photo.rgb
            mp[name] += rgb.shape[0] * rgb.shape[1] / 1e6
            if centerface is not None:
                t = time.perf_counter()
                centerface(rgb, 0.2)
                proxy[name] += time.perf_counter() - t
            for key, engine in engines.items():
                raw = photo_stages(engine, (path, photo, decode_s), costs[key][name], work)
                if name not in checked and key == "profile":
                    checked.add(name)
                    same = engine.detect_image(rgb)
                    if not (np.array_equal(same.xyxy, raw.xyxy) and np.array_equal(same.class_id, raw.class_id)):
                        print(f"warning: {name}: the staged run differs from Engine.detect_image", file=sys.stderr)
            print(f"{n + 1}/{len(photos)} photos", file=sys.stderr, flush=True)
        deface: dict[str, float] = {}
        startup = 0.0
        if not args.no_deface:
            for name in args.sets:
                paths = [p for s, p in photos if s == name]
                d = work / name
                d.mkdir()
                deface[name], startup = run_deface(paths, d)
        print(
            f"\n{len(photos)} photos, {args.half} half; deface start-up alone: {startup:.2f} s (included in its times)\n"
        )
        for name in args.sets:
            cost = costs["profile"][name]
            total = sum(v[0] for v in cost.values())
            ref = deface.get(name)
            print(f"### {name} ({sum(1 for s, _ in photos if s == name)} photos, {mp[name]:.2f} MP)\n")
            print("| stage | calls | MP fed | s | share | x deface's proxy |")
            print("|---|---|---|---|---|---|")
            for key, (secs, calls, fed) in sorted(cost.items(), key=lambda kv: -kv[1][0]):
                px = f"{secs / proxy[name]:.1f}" if proxy[name] else "–"
                print(f"| {key} | {calls or ''} | {fed:.1f} | {secs:.2f} | {secs / total:.1%} | {px} |")
            line = (
                f"| **total** | | | **{total:.2f}** | | {total / proxy[name]:.1f} |"
                if proxy[name]
                else f"| total | | | {total:.2f} | | |"
            )
            print(line)
            print(
                f"\ndeface's proxy (CenterFace 1x): {proxy[name]:.2f} s; deface 1.5 itself: "
                + (f"{ref:.2f} s" if ref else "not run")
            )
            for key in engines:
                t = sum(v[0] for v in costs[key][name].values())
                # Load-independent: megapixels and calls fed to each model (timings on a shared
                # machine swing by half from one run to the next; these do not).
                fed = {
                    cls: (
                        sum(v[2] for k, v in costs[key][name].items() if k.startswith(cls + " ")),
                        sum(v[1] for k, v in costs[key][name].items() if k.startswith(cls + " ")),
                    )
                    for cls in ("face", "plate")
                }
                print(
                    f"- {key}: fed "
                    + ", ".join(f"{cls} {mp_:.1f} MP in {calls} calls" for cls, (mp_, calls) in fed.items())
                )
                vs = (
                    f"{t / ref:.1f}x deface ({t / max(ref - startup, 1e-9):.1f}x deface without its start-up), "
                    if ref
                    else ""
                )
                print(
                    f"- {key}: {t:.2f} s, {vs}{t / proxy[name]:.1f}x the proxy"
                    if proxy[name]
                    else f"- {key}: {t:.2f} s"
                )
            print()
        all_ref = sum(deface.values())
        for key in engines:
            t = sum(sum(v[0] for v in costs[key][name].values()) for name in args.sets)
            if all_ref:
                print(
                    f"**all sets, {key}: {t:.1f} s against deface {all_ref:.1f} s: {t / all_ref:.1f}x** "
                    f"({t / max(all_ref - startup * len(deface), 1e-9):.1f}x without deface's start-ups; "
                    f"{t / sum(proxy.values()):.1f}x the proxy)"
                )
            else:
                print(f"all sets, {key}: {t:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
