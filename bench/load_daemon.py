"""The full load case of the fault suite: 1,000 files dropped at once onto 10,000 already sitting.

The sitting files are real files in the polled input folder, recorded in the journal as processed
earlier (as after months of ``retention: keep``): the daemon must list them on every poll and run
none of them again. Then ``--files`` small distinct photos are renamed in at once. Measured:
time to process them all, files per second, the daemon's resident memory over the run (first
third vs last third of the samples, and peak), and its CPU use once idle, still polling. Checked:
each new file has exactly one job, one verified output and one audit line; no sitting file is
queued again; nothing is lost (``tests/faults/helpers.check_nothing_lost``).

Usage:
    python bench/load_daemon.py                                  # 1,000 new + 10,000 sitting
    python bench/load_daemon.py --files 100 --sitting 0          # what CI runs, roughly
Prints one JSON object; exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "faults")]

import helpers as h  # the fault suite's helpers, shared on purpose
from _seed import seed_processed


def add_sitting(rig: h.Rig, count: int) -> None:
    """Create ``count`` small files in 100 sub-folders and record them as processed and kept."""
    seed_processed(rig.state / "journal.sqlite3", "cam", rig.inp, count, prefix="old", suffix=".jpg")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000, help="photos dropped at once")
    ap.add_argument("--sitting", type=int, default=10_000, help="already-processed files in the polled folder")
    ap.add_argument("--poll", type=float, default=2.0, help="poll_interval_s")
    ap.add_argument("--idle-seconds", type=float, default=20.0, help="idle CPU measurement window")
    args = ap.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="anonymizer-load-") as tmp,
        h.rig_at(Path(tmp), settle_s=1.0, poll_s=args.poll) as rig,
    ):
        add_sitting(rig, args.sitting)
        daemon = rig.daemon()
        sampler = h.Sampler(daemon.pid, interval_s=0.5)
        sampler.start()
        started = time.monotonic()
        dropped = h.write_photos(rig.inp, args.files)
        total = args.sitting + args.files
        h.wait_serving(daemon, lambda: h.all_final(rig, total), 3 * 3600, f"{args.files} new jobs")
        elapsed = time.monotonic() - started
        rss = [kb for _, kb in sampler.stop()]

        time.sleep(2 * args.poll)
        cpu0, t0 = h.cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle = (h.cpu_seconds(daemon.pid) - cpu0) / (time.monotonic() - t0)
        code = daemon.stop()

        problems = []
        try:
            h.check_nothing_lost(rig, dropped)
        except AssertionError as exc:
            problems.append(str(exc)[:2000])
        rows = rig.jobs()
        rerun = [r for r in rows if r["rel_path"].startswith("old") and r["state"] != "retired"]
        # A retired job keeps only the path HMAC of its file (the journal erases names).
        hmacs = {h.rel_hmac(rig, rel) for rel in dropped}
        new_jobs = [r for r in rows if r["rel_path"] in dropped or r["path_hmac"] in hmacs]
        if rerun:
            problems.append(f"{len(rerun)} sitting files were queued again")
        if len(new_jobs) != args.files:
            problems.append(f"{len(new_jobs)} jobs for {args.files} new files")
        third = max(1, len(rss) // 3)
        result = {
            "files_dropped": args.files,
            "files_sitting": args.sitting,
            "poll_interval_s": args.poll,
            "seconds_to_process": round(elapsed, 1),
            "files_per_s": round(args.files / elapsed, 2),
            "rss_first_third_mib": round(statistics.median(rss[:third]) / 1024, 1) if rss else None,
            "rss_last_third_mib": round(statistics.median(rss[-third:]) / 1024, 1) if rss else None,
            "rss_peak_mib": round(max(rss) / 1024, 1) if rss else None,
            "idle_cpu_percent_of_one_core": round(100 * idle, 2),
            "exit_code": code,
            "problems": problems,
        }
        print(json.dumps(result, indent=2))
        return 0 if not problems and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
