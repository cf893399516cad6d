"""Files per minute through the real daemon on the bundled sample photos.

Each sample is copied ``--copies`` times with a unique trailing comment byte sequence after the
JPEG end marker (decoders ignore it), so every copy has its own content and none is skipped as a
duplicate. The daemon is started first (warm-up excluded), the files are renamed into the input
folder at once, and the time until the last audit line is written is measured.

Usage:
    python bench/daemon_throughput.py --copies 4                    # built-in default profile
    python bench/daemon_throughput.py --copies 4 --profile fast     # faces only, one scale
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "samples").glob("*.jpg"))


def audit_jobs(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"event":"job"' in line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=4, help="copies of each sample")
    ap.add_argument("--profile", default="default", help="'default' (built-in), 'fast', or a profile path")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="anonymizer-tput-") as tmp:
        root = Path(tmp)
        for d in ("in", "staging"):
            (root / d).mkdir()
        if args.profile == "default":
            profile = REPO / "profiles" / "default.yaml"
        elif args.profile == "fast":
            profile = root / "fast.yaml"
            profile.write_text("detect: {plates: {enabled: false}, faces: {scales: [1.0]}}\n")
        else:
            profile = Path(args.profile).resolve()
        config = {
            "state_dir": "state",
            "audit_dir": "audit",
            "folders": [
                {
                    "name": "bench",
                    "input": "in",
                    "output": "out",
                    "quarantine": "q",
                    "profile": str(profile),
                    "poll_interval_s": 0.5,
                    "settle_s": 1,
                }
            ],
        }
        (root / "daemon.yaml").write_text(yaml.safe_dump(config))
        staged = []
        for i in range(args.copies):
            for s in SAMPLES:
                p = root / "staging" / f"{s.stem}-{i}.jpg"
                p.write_bytes(s.read_bytes() + f"copy-{i}".encode())
                staged.append(p)
        with open(root / "daemon.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "anonymizer", "daemon", "--config", str(root / "daemon.yaml")],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            while b"daemon.ready" not in (root / "daemon.log").read_bytes():
                if proc.poll() is not None:
                    print((root / "daemon.log").read_text(), file=sys.stderr)
                    return 1
                time.sleep(0.2)
            t0 = time.monotonic()
            for p in staged:
                p.rename(root / "in" / p.name)
            audit = root / "audit" / "audit.jsonl"
            while audit_jobs(audit) < len(staged):
                if proc.poll() is not None:
                    return 1
                time.sleep(0.1)
            elapsed = time.monotonic() - t0
        finally:
            proc.terminate()
            proc.wait(60)
        outcomes: dict[str, int] = {}
        for line in audit.read_text().splitlines():
            rec = json.loads(line)
            if rec["event"] == "job":
                outcomes[rec["outcome"]] = outcomes.get(rec["outcome"], 0) + 1
        print(
            json.dumps(
                {
                    "profile": args.profile,
                    "files": len(staged),
                    "elapsed_s": round(elapsed, 1),
                    "files_per_minute": round(60 * len(staged) / elapsed, 1),
                    "note": "includes settle_s=1 s and poll 0.5 s before the first job",
                    "outcomes": outcomes,
                },
                indent=2,
            )
        )
        return 0


if __name__ == "__main__":
    sys.exit(main())
