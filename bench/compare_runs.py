"""Object-frame by object-frame: runs of ``bench/eval_video.py --json`` on the same clips, each
against the first (the current default), and against the first run's reference when it has one.

The adoption rule of a recall setting: on the confirm half it loses nothing the current default
hides ("lost" = leaked by the run, hidden by the first). With a first run made with ``--compare``,
"profile only" counts each run's leaks the reference hid, by any mask and by the object's own
masks (its ``hidden_by_chance`` left out: ``bench/eval_video.py --compare``).

    .venv-test/bin/python bench/eval_video.py --kind crossers --half confirm --json /tmp/base.json
    .venv-test/bin/python bench/eval_video.py --kind crossers --half confirm --profile x.yaml --json /tmp/x.json
    .venv-test/bin/python bench/compare_runs.py /tmp/base.json /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def keys(leaks: list[dict[str, Any]]) -> set[tuple[int, int]]:
    return {(int(leak["frame"]), int(leak["object"])) for leak in leaks}


def missed(leak: dict[str, Any]) -> bool:
    """``videos.is_missed`` on a leak read back from JSON."""
    masked = leak.get("masked")
    return (leak["changed"] if masked is None else masked) < 0.05


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "runs", nargs="+", type=Path, help="eval_video.py --json files of the same clips; the first is the base"
    )
    args = parser.parse_args(argv)
    base = {c["clip"]: c for c in json.loads(args.runs[0].read_text())["clips"]}
    print(
        "| run | object-frames | leaked | missed | plates per 1,000 | profile only | profile only, own masks "
        "| lost / gained vs the first | job CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.runs:
        frames = plate_frames = leaked = n_missed = lost = gained = 0
        only: int | None = 0
        own: int | None = 0
        cpu = 0.0
        plate_leaks = 0
        for clip in json.loads(path.read_text())["clips"]:
            first = base.get(clip["clip"])
            if first is None or first["object_frames"] != clip["object_frames"]:
                raise SystemExit(f"{path}: {clip['clip']} is not a clip of {args.runs[0]}")
            mine = keys(clip["leaks"])
            frames += clip["object_frames"]
            leaked += len(mine)
            n_missed += sum(1 for leak in clip["leaks"] if missed(leak))
            plate_leaks += sum(1 for leak in clip["leaks"] if not leak.get("face", True))
            lost += len(mine - keys(first["leaks"]))
            gained += len(keys(first["leaks"]) - mine)
            cpu += float(clip.get("cpu_seconds", 0.0))
            ref = first.get("reference")
            if ref is None or only is None or own is None or "hidden_by_chance" not in ref:
                only = own = None
                continue
            plate_frames += int(ref["plate_object_frames"])
            mine_only = mine - keys(ref["leaks"])
            only += len(mine_only)
            own += len(mine_only - {(int(f), int(o)) for f, o in ref["hidden_by_chance"]})
        per_k = f"{1000 * plate_leaks / plate_frames:.1f}" if plate_frames else "-"
        print(
            f"| {path.name} | {frames} | {leaked} | {n_missed} | {per_k} | {'-' if only is None else only} | "
            f"{'-' if own is None else own} | {lost} / {gained} | {cpu:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
