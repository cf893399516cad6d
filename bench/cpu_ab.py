"""CPU seconds of two commits' engines on the same clips, alternating, and whether they mask alike.

Exports both commits with ``git archive`` into a temporary folder, makes bench/speed.py's panned
and fixed clips once, then runs ``Engine.process`` of each tree in its own process, before/after
in turn, ``--rounds`` times: each run prints its process CPU seconds (engine loaded before the
clock starts), wall seconds and the SHA-256 of its output's decoded frames. Prints per clip the
median CPU and wall of each commit and whether every output hash is the same (bit-identical
masked video). On a shared machine, CPU seconds and medians of alternating runs are the measure.

    .venv/bin/python bench/cpu_ab.py e0154d5 HEAD --rounds 5
    .venv/bin/python bench/cpu_ab.py HEAD~1 HEAD --kinds panned --frames 30 --profile profiles/cctv-fast.yaml
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RUN = """
import hashlib, json, resource, sys, time
from pathlib import Path
tree, clip, profile, out = sys.argv[1:5]
sys.path.insert(0, tree)
import av
from anonymizer.config import load_profile
from anonymizer.pipeline import Engine
try:  # set the process up as the CLI does (anonymizer.cli.main)
    from anonymizer.media.memory import return_large_buffers
    return_large_buffers()
except ImportError:
    pass
engine = Engine(load_profile(Path(profile)))
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
c, w = cpu(), time.perf_counter()
engine.process(Path(clip), Path(out))
c, w = cpu() - c, time.perf_counter() - w
h = hashlib.sha256()
with av.open(out) as f:
    for frame in f.decode(video=0):
        h.update(frame.to_ndarray().tobytes())
print(json.dumps({"cpu": c, "wall": w, "hash": h.hexdigest()}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kinds", nargs="+", choices=("panned", "fixed"), default=["panned", "fixed"])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--profile", default="profiles/default.yaml", help="relative to each tree")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT))
    import speed

    with tempfile.TemporaryDirectory(prefix="anon-cpu-ab-") as tmp:
        work = Path(tmp)
        trees = {}
        for name, commit in (("before", args.before), ("after", args.after)):
            tree = work / name
            tree.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            trees[name] = tree
        clips = {}
        for kind in args.kinds:
            if kind == "panned":
                clips[kind] = speed.make_clip(work / "panned.mp4", args.frames)
            else:
                clips[kind], _ = speed.make_fixed_clip(work / "fixed.mp4", args.frames, seed=2, use_labels=True)
        runs: dict[tuple[str, str], list[dict]] = {(k, n): [] for k in clips for n in trees}
        for i in range(args.rounds):
            for kind, clip in clips.items():
                for name, tree in trees.items():
                    out = (
                        subprocess.run(
                            [
                                sys.executable,
                                "-c",
                                RUN,
                                str(tree),
                                str(clip),
                                str(tree / args.profile),
                                str(work / f"out-{name}.mp4"),
                            ],
                            cwd=tree,
                            check=True,
                            capture_output=True,
                            text=True,
                        )
                        .stdout.strip()
                        .splitlines()[-1]
                    )
                    runs[(kind, name)].append(json.loads(out))
                    print(f"round {i + 1} {kind} {name}: {out}", file=sys.stderr, flush=True)
    print(f"{args.before} -> {args.after}, {args.rounds} alternating rounds, {args.frames} frames, {args.profile}\n")
    print("| clip | CPU s before (median) | after | change | wall s before | after | outputs |")
    print("|---|---|---|---|---|---|---|")
    for kind in clips:
        b, a = runs[(kind, "before")], runs[(kind, "after")]
        cb, ca = statistics.median(r["cpu"] for r in b), statistics.median(r["cpu"] for r in a)
        wb, wa = statistics.median(r["wall"] for r in b), statistics.median(r["wall"] for r in a)
        hashes = {r["hash"] for r in b + a}
        same = "bit-identical" if len(hashes) == 1 else f"{len(hashes)} different"
        print(f"| {kind} | {cb:.2f} | {ca:.2f} | {100 * (ca - cb) / cb:+.0f} % | {wb:.1f} | {wa:.1f} | {same} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
