"""Leaked object-frames per 1,000 on synthetic clips made from the labelled photos.

Two kinds of clip, each reported per set (``--kind``):

* **panned** (the default): a camera pans and zooms over one photo, with sensor noise, motion-blur
  bursts and a short dropout burst; every frame's true boxes follow from the camera path
  (anonymizer/evaluate/videos.py).
* **fixed**: a camera that never moves looks at one photo, whose labelled objects either stand still
  or are painted out, while labelled objects cut from other photos of the same set cross it from
  edge to edge at the speeds cameras see, with empty stretches between; noise, slow light changes,
  H.264 with a 2 s GOP, and in some clips one shake or pan segment
  (anonymizer/evaluate/fixed_camera.py).

Each clip goes through the real video job (``Engine.process``) and every labelled object not
hidden in a frame is a leaked object-frame. Targets for the default profile: <= 1 per 1,000 on both
kinds, collateral <= 0.05 (the share of pixels outside every true box that the masks changed,
against the clip re-encoded without masks).

    .venv/bin/python bench/eval_video.py                                  # default profile, panned clips
    .venv/bin/python bench/eval_video.py --kind both                      # panned and fixed-camera clips
    .venv/bin/python bench/eval_video.py --kind fixed --clips-per-set 2 --fixed-frames 96
    .venv/bin/python bench/eval_video.py --profile bench/profiles/x.yaml --clips-per-set 1 --frames 24
    .venv/bin/python bench/eval_video.py --json /tmp/video.json           # all leaks, frame by frame
    .venv/bin/python bench/eval_video.py --seed 11                        # other photos, other camera paths
    .venv/bin/python bench/eval_video.py --kind crossers --crf 30         # compressed as VMS exports are
    .venv/bin/python bench/eval_video.py --kind both --oracle             # the collateral floor of the masks

* **crossers**: fixed-camera clips at 1080p where every crossing object is a face or plate of
  12-40 px crossing the frame in 0.7-2 s, entering at any edge and leaving at any other, up to
  four at once, over an empty scene or a busy one (every labelled object of the background
  stands), alternating by clip and set (``busy``).

``--half tune|confirm`` draws every clip's photos (background and crossing objects) from one half
of each set (the fixed split of ../shared/eval/README.md): rules are chosen on the tune half's
clips and adopted only if the confirm half's clips hide every object the reference hides.

``--compare`` runs the reference too, on exactly the same clips: every pass of the profile's full
plan on every frame, no gating (``videos.reference_profile``). It reports the leaked object-frames
of each, and those the profile leaks that the reference does not (the target: <= 1 per 1,000),
by two criteria: "profile only" (the reference hid it, by any mask) and "profile only, own masks"
(the reference hid it with a mask of the object's own track, a track that detected this very
object within 20 frames, covering at least 0.9 of it: ``bench/crosser_causes.py``). The second
leaves out what the reference hides by chance under other objects' masks (a false plate on a
chest, another track's widened guess), which no schedule of the profile's passes is meant to copy.

``--reference-json FILE`` takes the reference's results from an earlier ``--compare --json`` run
of the same clips (same seed, sets, half, clip counts and sizes) instead of running it again: for
profiles that differ from that run's only in what the reference never runs (the gated frames'
settings: ``video_zoom``, ``video_gated_every_frame``, ``video_zoom_*``), checked by hashing both
reference profiles with those keys blanked. The reference is most of a run's time.

    .venv/bin/python bench/eval_video.py --kind crossers --half tune --compare --json /tmp/ref.json
    .venv/bin/python bench/eval_video.py --kind crossers --half tune --profile x.yaml --reference-json /tmp/ref.json

    .venv/bin/python bench/eval_video.py --kind crossers --half tune --compare --clips-per-set 2
    .venv/bin/python bench/eval_video.py --kind crossers --half confirm --compare --clips-per-set 2

``--oracle`` replaces the detector and tracker by the truth: every counted true box of every frame
is padded and masked exactly as the profile pads and masks a detection (``Engine.regions``, its
masker, its encoder). No object leaks then, and the collateral it reports is what the profile's
margins and mask shape cost on their own: no rule about detections can bring collateral below it.

Each set and kind draws its photos from its own seeded stream, so ``--sets`` and ``--kind`` pick
the same clips in any combination, and adding fixed clips leaves the panned ones as they were.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.config import load_profile
from anonymizer.detections import FACE
from anonymizer.evaluate import fixed_camera, videos
from anonymizer.evaluate.labels import read_label_set
from anonymizer.evaluate.runner import load_rgb

DEFAULT_EVAL_DIR = Path(os.environ.get("ANONYMIZER_EVAL_DIR", ROOT.parent / "shared" / "eval"))
SETS = ("faces-wider", "faces-masks", "plates-openalpr", "plates-uc3m-lowres")


class Oracle:
    """Masks each frame's counted true boxes as the engine masks detections (``--oracle``)."""

    def __init__(self, engine) -> None:
        self.engine, self.profile = engine, engine.profile
        self.truths: list[videos.FrameTruth] = []
        self.is_face: np.ndarray | None = None

    def expect(self, truths: list[videos.FrameTruth], is_face: np.ndarray | None) -> None:
        self.truths, self.is_face = truths, is_face

    def process(self, src: Path, dst: Path) -> None:
        from anonymizer.detections import PLATE, Detections
        from anonymizer.media.video import VideoWriter, iter_frames, probe_video

        limits = self.profile.limits
        info = probe_video(src, limits)
        writer = VideoWriter(src, dst, self.profile.output, info)
        for decoded, truth in zip(iter_frames(src, limits), self.truths):
            faces = self.is_face[truth.object_ids] if self.is_face is not None else np.ones(len(truth.object_ids), bool)
            dets = Detections(truth.boxes, np.ones(len(truth.boxes)), np.where(faces, FACE, PLATE))
            rgb = decoded.rgb()
            regions = self.engine.regions(dets, (rgb.shape[1], rgb.shape[0]), video=True)
            writer.write(self.engine.masker.apply(rgb, regions), decoded.pts)
        writer.close()


# What only gated frames read: the reference (gating off) never runs them, so profiles that differ
# only here share one reference (``--reference-json``).
GATED_ONLY = ("video_zoom", "video_gated_every_frame")


def reference_key(profile) -> str:
    """The SHA-256 of ``profile``'s reference with the gated-only keys (and the name) blanked."""
    from dataclasses import fields, replace

    ref = videos.reference_profile(profile)

    def blank(spec):
        return replace(spec, **{f.name: getattr(type(spec)(), f.name) for f in fields(spec) if f.name.startswith(GATED_ONLY)})

    detect = replace(ref.detect, faces=blank(ref.detect.faces), plates=blank(ref.detect.plates))
    return replace(ref, name="reference", detect=detect).sha256


def to_summary(result: videos.ClipResult, by_chance: set[tuple[int, int]]) -> dict:
    """A reference's summary, with what ``from_summary`` needs to stand in for it."""
    return {
        **result.summary(),
        "collateral_changed": result.collateral_changed,
        "collateral_total": result.collateral_total,
        "plate_object_frames": result.plate_object_frames,
        "hidden_by_chance": sorted(by_chance),
    }


def from_summary(clip: dict) -> tuple[videos.ClipResult, set[tuple[int, int]]]:
    """(the reference's result, the object-frames it hid by chance) of one clip of an earlier run."""
    ref = clip["reference"]
    result = videos.ClipResult(
        ref["clip"], ref["frames"], ref["objects"], ref["object_frames"], list(ref["leaks"]), float(ref["seconds"]),
        float(ref.get("cpu_seconds", 0.0)),
        int(ref["collateral_changed"]), int(ref["collateral_total"]), plate_object_frames=int(ref["plate_object_frames"]),
    )
    return result, {(int(f), int(o)) for f, o in ref["hidden_by_chance"]}


def busy(set_name: str, k: int) -> bool:
    """Whether crossers clip ``k`` of a set has a busy scene (every labelled object standing) or an
    empty one: alternating, and starting differently per set, so one clip per set shows both."""
    return (k + (SETS.index(set_name) if set_name in SETS else 0)) % 2 == 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL_DIR)
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--profile", default=None, help="profile YAML (default: profiles/default.yaml)")
    parser.add_argument(
        "--kind", choices=("panned", "fixed", "crossers", "both", "all"), default="panned",
        help="which clips: both = panned and fixed, all = the three (default: panned)",
    )
    parser.add_argument("--half", choices=fixed_camera.HALVES, default=None, help="draw every clip from this half of each set (default: all images)")
    parser.add_argument("--compare", action="store_true", help="also run the reference (every pass, every frame, no gating) on the same clips")
    parser.add_argument("--crosser-frames", type=int, default=72, help="frames per crossers clip (24 fps)")
    parser.add_argument("--crosser-size", default="1920x1080", help="crossers clip size WxH")
    parser.add_argument("--clips-per-set", type=int, default=12, help="clips per set and kind")
    parser.add_argument("--frames", type=int, default=48, help="frames per panned clip")
    parser.add_argument("--fixed-frames", type=int, default=120, help="frames per fixed-camera clip (24 fps)")
    parser.add_argument("--crossing-photos", type=int, default=8, help="photos a fixed clip draws its crossing objects from")
    parser.add_argument("--camera-motion", type=float, default=0.3, help="share of fixed clips with one shake or pan segment")
    parser.add_argument("--size", default="640x360", help="clip size WxH")
    parser.add_argument(
        "--crf", type=int, default=None,
        help="H.264 quality of every fixed-camera and crossers clip (default: drawn per clip, 18-25); VMS exports are "
        "often compressed harder, and their grain at a new GOP is what gating sees as stray changed cells",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="write every clip's summary and leaks here")
    parser.add_argument("--keep", type=Path, default=None, help="keep every clip (input, output, plain re-encode) in this folder")
    parser.add_argument("--oracle", action="store_true", help="mask the true boxes instead of detecting: the collateral floor of the margins")
    parser.add_argument(
        "--reference-json", type=Path, default=None,
        help="the reference's results from an earlier --compare --json run of the same clips (not run again)",
    )
    parser.add_argument(
        "--diagnose", action="store_true",
        help="print, per partly masked leak of the profile, the masks and detections near it (bench/partial_masks.py)",
    )
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    crosser_size = tuple(int(v) for v in args.crosser_size.lower().split("x"))
    kinds = {"both": ("panned", "fixed"), "all": ("panned", "fixed", "crossers")}.get(args.kind, (args.kind,))

    from anonymizer.pipeline import Engine

    recorder = None
    if args.diagnose or args.compare:
        from bench.partial_masks import Recorder

        recorder = Recorder()
        recorder.install()
    profile = load_profile(args.profile)
    engine = Engine(profile)
    if args.oracle:
        engine = Oracle(engine)
    engines = {"": engine}
    earlier: dict[str, dict] = {}
    if args.reference_json:
        loaded = json.loads(args.reference_json.read_text())
        if loaded.get("reference_key") != reference_key(profile):
            parser.error(f"{args.reference_json}: its reference ran other settings than this profile's reference")
        earlier = {c["clip"]: c for c in loaded["clips"] if "reference" in c}
        args.compare = True
    elif args.compare:
        engines["reference"] = Engine(videos.reference_profile(profile))
    results: list[tuple[str, str, videos.ClipResult]] = []  # (kind, set, result)
    references: list[videos.ClipResult | None] = []  # the reference's result on the same clip
    # Per clip (--compare), the object-frames the reference hid only by chance (no own mask covers
    # OWN_COVER of them), and the profile's leaks that the reference hid with the object's own masks.
    chance: list[set[tuple[int, int]]] = []
    own_only: list[set[tuple[int, int]]] = []

    def report(kind: str, set_name: str, name: str, image: str, result: videos.ClipResult, started: float, reference=None) -> None:
        by_chance: set[tuple[int, int]] = set()
        if reference is None and earlier:
            if name not in earlier or earlier[name]["object_frames"] != result.object_frames:
                raise SystemExit(f"{name}: not in {args.reference_json}, or another clip there")
            reference, by_chance = from_summary(earlier[name])
        elif reference is not None and recorder is not None:
            from bench.crosser_causes import hidden_by_own_masks

            # The jobs of one clip ran in the order of ``engines``: the reference's is the last.
            hidden = {(f, int(oid)) for f, t in enumerate(reference.truths) for oid in t.object_ids}
            hidden -= videos.leak_keys(reference)
            by_chance = hidden - hidden_by_own_masks(recorder.jobs[-1], reference.truths, hidden)
        results.append((kind, set_name, result))
        references.append(reference)
        chance.append(by_chance)
        own_only.append(set() if reference is None else videos.leak_keys(result) - videos.leak_keys(reference) - by_chance)
        versus = "" if reference is None else (
            f" (reference {len(reference.leaked)} leaked, {reference.seconds / reference.frames:.2f} s/frame)"
        )
        print(
            f"  {name} ({image}): {result.object_frames} object-frames, {len(result.leaked)} leaked, "
            f"{result.seconds / result.frames:.2f} s/frame{versus} ({time.perf_counter() - started:.0f} s total)",
            file=sys.stderr,
            flush=True,
        )
        if recorder is not None and args.diagnose and not args.oracle:
            from bench.partial_masks import explain

            # The jobs of one clip ran in the order of ``engines``: the profile's is the first.
            for line in explain(name, result.leaked, recorder.jobs[-len(engines)]):
                print(line, file=sys.stderr, flush=True)
        if recorder is not None:
            recorder.jobs.clear()  # one clip's records at a time: a long run's would not fit in memory
        result.truths = []
        if reference is not None:
            reference.truths = []

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext(str(args.keep)) if args.keep else tempfile.TemporaryDirectory(prefix="anonymizer-eval-video-") as tmp:
        for set_name in args.sets:
            set_dir = args.eval_dir / set_name
            if not (set_dir / "labels.jsonl").is_file():
                print(f"skipping {set_name}: not in {args.eval_dir}", file=sys.stderr)
                continue
            labels = [li for li in read_label_set(set_dir) if len(li.boxes)]
            if args.half:
                labels = [li for li in labels if fixed_camera.half_of(li.image) == args.half]
            if "panned" in kinds:
                # Each set draws from its own stream, so --sets picks the same clips in any combination.
                rng = np.random.default_rng([args.seed, zlib.crc32(set_name.encode())])
                for k, index in enumerate(rng.choice(len(labels), size=min(args.clips_per_set, len(labels)), replace=False)):
                    label = labels[int(index)]
                    rgb = load_rgb(set_dir / label.image, label, profile.limits)
                    seed = int(rng.integers(1 << 30))
                    plan = videos.plan_clip((rgb.shape[1], rgb.shape[0]), label.boxes, seed=seed, n_frames=args.frames, size_wh=size)
                    name = f"{set_name}-{k}"
                    t = time.perf_counter()
                    src = Path(tmp) / f"{name}.mp4"
                    truths = videos.synthesize(rgb, label.boxes, plan, src, seed=seed)
                    scored = {
                        tag: videos.anonymize_and_score(e, name, src, truths, Path(tmp), is_face=label.class_id == FACE, tag=tag)
                        for tag, e in engines.items()
                    }
                    report("panned", set_name, name, label.image, scored[""], t, scored.get("reference"))

            def still_camera_clips(kind: str, n_frames: int, size_wh: tuple[int, int], plan_kw: Callable[[int], dict]) -> None:
                """Fixed-camera clips of one kind. Each kind draws from a stream of its own, so
                adding a kind never changes which clips the others get."""
                rng = np.random.default_rng([args.seed, zlib.crc32(set_name.encode()), zlib.crc32(kind.encode())])
                n_photos = min(len(labels), 1 + args.crossing_photos)
                for k in range(args.clips_per_set):
                    picked = [labels[int(i)] for i in rng.choice(len(labels), size=n_photos, replace=False)]
                    photos = [fixed_camera.photo_from_label(set_dir, label, profile.limits) for label in picked]
                    seed = int(rng.integers(1 << 30))
                    plan = fixed_camera.plan_fixed_clip(
                        photos[0], photos[1:], seed=seed, n_frames=n_frames, size_wh=size_wh, **plan_kw(k)
                    )
                    if args.crf is not None:
                        plan = dataclasses.replace(plan, crf=args.crf)
                    name = f"{set_name}-{kind}-{k}"
                    t = time.perf_counter()
                    scored = fixed_camera.evaluate_fixed_clip_with(engines, name, photos[0], photos[1:], plan, Path(tmp), seed=seed)
                    report(kind, set_name, name, picked[0].image, scored[""], t, scored.get("reference"))

            if "fixed" in kinds:
                still_camera_clips("fixed", args.fixed_frames, size, lambda k: {"motion_prob": args.camera_motion})
            if "crossers" in kinds:
                # Fast small crossers at 1080p, on a still camera, over an empty or a busy scene.
                still_camera_clips(
                    "crossers",
                    args.crosser_frames,
                    crosser_size,
                    lambda k: {"motion_prob": 0.0, "keep_prob": float(busy(set_name, k)), "crossers": True},
                )

    print(
        "| profile | kind | set | clips | object-frames | leaked | missed | partly masked | leaked per 1,000 | collateral "
        "| job CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        for set_name in [*args.sets, None]:
            rows = [r for k, s, r in results if k == kind and (set_name is None or s == set_name)]
            if not rows:
                continue
            leaks = [leak for r in rows for leak in r.leaked]
            missed = sum(1 for leak in leaks if videos.is_missed(leak))
            per_k = videos.leaks_per_thousand(rows)
            spill = videos.collateral(rows)
            print(
                f"| {profile.name} | {kind} | {set_name or '**all**'} | {len(rows)} | {sum(r.object_frames for r in rows)} | "
                f"{len(leaks)} | {missed} | {len(leaks) - missed} | {'-' if per_k is None else f'{per_k:.2f}'} | "
                f"{'-' if spill is None else f'{spill:.4f}'} | {sum(r.cpu_seconds for r in rows):.1f} |"
            )
    if args.compare:
        print()
        print(
            f"| {args.half or 'all'} half | kind | set | object-frames | leaked: profile | reference | profile only | "
            "profile only per 1,000 | profile only, own masks | own masks per 1,000 | plate object-frames | "
            "plates leaked per 1,000: profile | reference | collateral: profile | reference | time profile / reference |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for kind in kinds:
            for set_name in [*args.sets, None]:
                pairs = [
                    (r, ref) for (k, s, r), ref in zip(results, references)
                    if ref is not None and k == kind and (set_name is None or s == set_name)
                ]
                own = sum(
                    len(o) for (k, s, _), ref, o in zip(results, references, own_only)
                    if ref is not None and k == kind and (set_name is None or s == set_name)
                )
                if not pairs:
                    continue
                frames = sum(r.object_frames for r, _ in pairs)
                only = sum(len(videos.leak_keys(r) - videos.leak_keys(ref)) for r, ref in pairs)
                plate_frames = sum(r.plate_object_frames for r, _ in pairs)

                def plates(rows: list[videos.ClipResult]) -> str:
                    leaked = sum(1 for r in rows for leak in r.leaked if not leak.get("face", True))
                    return f"{1000 * leaked / plate_frames:.1f}" if plate_frames else "-"

                mine, theirs = [r for r, _ in pairs], [ref for _, ref in pairs]
                spill, ref_spill = videos.collateral(mine), videos.collateral(theirs)
                ratio = sum(r.seconds for r in mine) / max(1e-9, sum(r.seconds for r in theirs))
                print(
                    f"| {args.half or 'all'} | {kind} | {set_name or '**all**'} | {frames} | {sum(len(r.leaked) for r in mine)} | "
                    f"{sum(len(r.leaked) for r in theirs)} | {only} | {1000 * only / frames if frames else 0:.2f} | {own} | "
                    f"{1000 * own / frames if frames else 0:.2f} | {plate_frames} | "
                    f"{plates(mine)} | {plates(theirs)} | {'-' if spill is None else f'{spill:.4f}'} | "
                    f"{'-' if ref_spill is None else f'{ref_spill:.4f}'} | {ratio:.2f} |"
                )
    gated = [(k, r.passes) for k, _, r in results if r.passes]
    if gated:
        # What the gated frames cost: the share of their pixels the passes ran over (changed areas
        # and the objects they touch), per kind and class.
        print()
        print("| kind | class | detector frames: full / dense / gated / refresh | changed share of gated frames |")
        print("|---|---|---|---|")
        for kind in kinds:
            for cls in sorted({c for k, p in gated if k == kind for c in p}):
                stats = [p[cls] for k, p in gated if k == kind and cls in p]
                total = {key: sum(s.get(key, 0) for s in stats) for key in ("full", "dense", "gated", "refresh", "changed_px", "frame_px")}
                share = total["changed_px"] / total["frame_px"] if total["frame_px"] else 0.0
                print(
                    f"| {kind} | {cls} | {total['full']} / {total['dense']} / {total['gated']} / {total['refresh']} | {share:.3f} |"
                )
    fixed_rows = [r for k, _, r in results if k in ("fixed", "crossers")]
    if fixed_rows:
        # Who leaks in a still scene: standing objects (a gate that forgot them) or crossing ones
        # (walkers entering at an edge before their first detection).
        print()
        print("| fixed clips: role | object-frames | leaked | of them within 16 px of an edge | leaked per 1,000 |")
        print("|---|---|---|---|---|")
        roles = sorted({role for r in fixed_rows for role in r.object_frames_by_role})
        for role in roles:
            frames = sum(r.object_frames_by_role.get(role, 0) for r in fixed_rows)
            leaks = [leak for r in fixed_rows for leak in r.leaked if leak["role"] == role]
            edge = sum(1 for leak in leaks if leak["edge_px"] <= 16)
            print(f"| {role} | {frames} | {len(leaks)} | {edge} | {1000 * len(leaks) / frames if frames else 0:.2f} |")
    if args.json:
        everything = [r for _, _, r in results]
        summary = {"profile": profile.name, "leaked_per_1000": videos.leaks_per_thousand(everything), "collateral": videos.collateral(everything)}
        per_kind = {
            kind: {
                "leaked_per_1000": videos.leaks_per_thousand([r for k, _, r in results if k == kind]),
                "collateral": videos.collateral([r for k, _, r in results if k == kind]),
            }
            for kind in kinds
        }
        clips = [
            {
                **r.summary(),
                "kind": k,
                "set": s,
                **({"reference": to_summary(ref, c), "profile_only_own_masks": sorted(o)} if ref is not None else {}),
            }
            for (k, s, r), ref, c, o in zip(results, references, chance, own_only)
        ]
        key = {"reference_key": reference_key(profile)} if args.compare else {}
        args.json.write_text(json.dumps({**summary, **key, "kinds": per_kind, "clips": clips}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
