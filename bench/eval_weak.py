"""The weak-track confirmation rules (issue 26) against the tracker without them, on the same clips.

Runs ``bench/eval_video.py`` with its arguments (fixed-camera kinds: ``--kind fixed`` or
``crossers``; ``--compare`` for the reference too) and adds a third engine to every clip: the
profile with ``track.confirm_still_sightings`` and ``track.confirm_fast_sightings`` at 0 (the
tracker before the rules). After eval_video's own tables it prints, per set, the leaked
object-frames and collateral of both, those the rules hide (``before only``) and those the
profile leaks that the tracker without the rules hides (``lost``: the adoption criterion, must be
0: a tracker rule adds masks, never removes one). ``--record FILE`` pickles, per clip, every
job's tracker input (``bench/partial_masks.Recorder``) with the clip's truth, for offline study.

    .venv-test/bin/python bench/eval_weak.py --kind crossers --half tune --compare --clips-per-set 3 \\
        --crosser-frames 48
    .venv-test/bin/python bench/eval_weak.py --kind fixed --half tune --clips-per-set 1 --fixed-frames 96
"""

from __future__ import annotations

import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anonymizer.evaluate import fixed_camera, videos
from anonymizer.pipeline import Engine

BEFORE = "before"


def main(argv: list[str]) -> int:
    record_to = None
    if "--record" in argv:
        i = argv.index("--record")
        record_to = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2 :]
    recorder = None
    if record_to is not None:
        from bench.partial_masks import Recorder

        recorder = Recorder()
        recorder.install()
    import bench.eval_video as eval_video

    clips: list[tuple[str, dict[str, videos.ClipResult]]] = []
    records: list[dict[str, Any]] = []
    evaluate = fixed_camera.evaluate_fixed_clip_with
    synthesize = fixed_camera.synthesize_fixed
    last_clip: dict[str, Any] = {}

    def synthesize_and_keep(*args: Any, **kwargs: Any) -> fixed_camera.FixedClip:
        clip = synthesize(*args, **kwargs)
        last_clip["clip"] = clip
        return clip

    def with_before(engines: dict[str, Any], name: str, *args: Any, **kwargs: Any) -> dict[str, videos.ClipResult]:
        profile = engines[""].profile
        track = replace(profile.track, confirm_still_sightings=0, confirm_fast_sightings=0)
        before = Engine(replace(profile, name=f"{profile.name}-before", track=track))
        jobs_before = len(recorder.jobs) if recorder is not None else 0
        scored = evaluate({**engines, BEFORE: before}, name, *args, **kwargs)
        clips.append((name, scored))
        if recorder is not None:
            clip = last_clip["clip"]
            tags = [*engines, BEFORE]
            records.append(
                {
                    "name": name,
                    "size_wh": args[2].size_wh,
                    "truths": clip.truths,
                    "is_face": clip.is_face,
                    "roles": clip.roles,
                    "found": {tag: job.found for tag, job in zip(tags, recorder.jobs[jobs_before:])},
                    "leaks": {tag: r.leaked for tag, r in scored.items()},
                }
            )
            del recorder.jobs[:]  # the masks of every frame are not needed here
        return scored

    fixed_camera.evaluate_fixed_clip_with = with_before
    fixed_camera.synthesize_fixed = synthesize_and_keep
    rc = eval_video.main(argv)
    print()
    print(
        "| set | clips | object-frames | leaked: before the rules | with them | before only (hidden by the rules) | "
        "lost (must be 0) | per 1,000: before | with | collateral: before | with | reference leaked | profile only vs reference |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    sets = sorted({name.rsplit("-", 2)[0] for name, _ in clips})
    for set_name in [*sets, None]:
        rows = [s for name, s in clips if set_name is None or name.rsplit("-", 2)[0] == set_name]
        if not rows:
            continue
        frames = sum(s[""].object_frames for s in rows)
        before = sum(len(s[BEFORE].leaked) for s in rows)
        now = sum(len(s[""].leaked) for s in rows)
        gained = sum(len(videos.leak_keys(s[BEFORE]) - videos.leak_keys(s[""])) for s in rows)
        lost = sum(len(videos.leak_keys(s[""]) - videos.leak_keys(s[BEFORE])) for s in rows)
        spill_b, spill = videos.collateral([s[BEFORE] for s in rows]), videos.collateral([s[""] for s in rows])
        refs = [s for s in rows if "reference" in s]
        ref = str(sum(len(s["reference"].leaked) for s in refs)) if refs else "-"
        only = str(sum(len(videos.leak_keys(s[""]) - videos.leak_keys(s["reference"])) for s in refs)) if refs else "-"
        print(
            f"| {set_name or '**all**'} | {len(rows)} | {frames} | {before} | {now} | {gained} | {lost} | "
            f"{1000 * before / max(1, frames):.1f} | {1000 * now / max(1, frames):.1f} | "
            f"{'-' if spill_b is None else f'{spill_b:.4f}'} | {'-' if spill is None else f'{spill:.4f}'} | {ref} | {only} |"
        )
    if record_to is not None:
        with record_to.open("wb") as f:
            pickle.dump(records, f)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
