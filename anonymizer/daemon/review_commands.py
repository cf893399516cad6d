"""``anonymizer review list | show JOB | approve JOB | reject JOB [--masks FILE]``.

Decisions go into the daemon's journal (the ``reviews`` table); the daemon applies them on its
next pass, so they hold across restarts and are applied once. Run as the service user or root.

Imports inside the command functions are deliberate: ``anonymizer --help`` and every other
command build this parser without loading OpenCV, PyAV, onnxruntime, FastAPI or Celery.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from anonymizer.audit.records import utc_iso
from anonymizer.errors import ConfigError
from anonymizer.review.hold import check_operator, local_operator
from anonymizer.settings.daemon import load_daemon_config
from anonymizer.store import ReviewStore, journal_path


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "review",
        help="outputs held for review (profile review: required): list, show, approve, reject",
        description=(
            "Work through the outputs the daemon holds for review (profile key review: required). Each "
            "waits in <state_dir>/review/<job id>/ beside its QA report (<job id>.qa.html), never in the "
            "output share; its source stays and retention waits. approve publishes it (once, also when "
            "repeated or after a restart) and lets retention proceed; reject deletes the review copy and, "
            "with --masks, runs the job again with those masks added (it is then held again). Every "
            "decision is an audit line naming the operator by id (--operator, default: the local user). "
            "The daemon applies decisions within a second or two while it runs, else when it starts. "
            "See docs/review.md."
        ),
    )
    sub = p.add_subparsers(dest="review_command", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", required=True, type=Path, metavar="FILE", help="the daemon's YAML config")
        q.add_argument("--json", action="store_true", help="print JSON")

    q = sub.add_parser("list", help="outputs waiting for a decision, oldest first", description=(
        "List the jobs whose output waits for review, oldest first: job id, folder, when it was held and "
        "for how long, and the masked counts. No file names (the journal's job ids and hashes)."))
    common(q)
    q.set_defaults(func=cmd_list)
    q = sub.add_parser("show", help="one held job: counts, sidecar effect, review copy and QA report paths",
                       description=(
        "Show one job of the review hold: its review state and rounds, the operator of the last decision, "
        "input and output SHA-256, counts, what its sidecar added or excluded, and where the review copy "
        "and its QA report are. Exit 1 for a job that was never held."))
    common(q)
    q.add_argument("job", metavar="JOB", help="job id (from review list)")
    q.set_defaults(func=cmd_show)
    for name, text in (("approve", "publish the held output and let retention proceed"),
                       ("reject", "discard the held output; with --masks, run the job again with them")):
        q = sub.add_parser(name, help=text, description=(
            f"Record the decision to {name} a held output in the daemon's journal; the daemon applies it "
            "once (a repeated decision changes nothing and exits 0, a contrary one exits 1). "
            + ("Approving publishes the review copy into the output share (never overwriting) and lets "
               "retention proceed." if name == "approve" else
               "Rejecting deletes the review copy; the source stays. With --masks the job runs again with "
               "those masks added to the sidecars beside the source, and is held again.")))
        common(q)
        q.add_argument("job", metavar="JOB", help="job id (from review list)")
        q.add_argument("--operator", metavar="ID", help="who decides, as an id (default: the local user name)")
        q.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                       help="wait up to SECONDS for the daemon to apply the decision (exit 1 if it did not)")
        if name == "reject":
            q.add_argument("--masks", type=Path, metavar="FILE",
                           help="sidecar (docs/review.md) of regions/exclusions to add when the job runs again")
        q.set_defaults(func=cmd_decide, decision="approved" if name == "approve" else "rejected")


def _store(args: argparse.Namespace, *, readonly: bool) -> Any:

    cfg = load_daemon_config(args.config)
    path = journal_path(cfg.state_dir)
    if not path.exists():
        raise ConfigError(f"{path}: no journal yet: the daemon has not run with this config")
    try:
        return ReviewStore(path, readonly=readonly)
    except Exception as exc:  # sqlite3.Error, OSError: say what to do rather than a traceback
        raise ConfigError(f"{path}: cannot open the journal ({exc}); run as the service user or root") from exc


def _describe(store: Any, review: Any, now: float) -> dict[str, Any]:

    row = store.job_row(review.job_id)
    summary = json.loads(row["summary_json"]) if row is not None and row["summary_json"] else {}
    folder = store.copy_dir(review.job_id)
    return {
        "job_id": review.job_id,
        "folder": review.folder,
        "review": review.state,
        "job_state": row["state"] if row is not None else None,
        "held_at": utc_iso(review.held_at),
        "waiting_s": round(now - review.held_at, 1) if review.state == "waiting" else None,
        "rounds": review.rounds,
        "operator": review.operator,
        "input_sha256": row["input_sha256"] if row is not None else None,
        "output": {"sha256": row["output_sha256"], "size": row["output_size"]} if row is not None else None,
        **{k: summary[k] for k in ("kind", "frames", "duration_s", "counts", "manual", "exclusions") if k in summary},
        "review_copy": str(folder / review.copy_name) if review.state == "waiting" else None,
        "qa_report": str(folder / f"{review.job_id}.qa.html"),
    }


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args, readonly=True)
    try:
        now = time.time()
        rows = [_describe(store, r, now) for r in store.waiting()]
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no outputs waiting for review")
    for r in rows:
        counts = ", ".join(f"{c.get('regions', 0)} {n}" for n, c in (r.get("counts") or {}).items())
        print(f"{r['job_id']}  folder {r['folder']}  held {r['held_at']} ({r['waiting_s']:.0f} s)  {r.get('kind', '?')}, {counts}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args, readonly=True)
    try:
        review = store.get(args.job)
        data = _describe(store, review, time.time()) if review is not None else None
    finally:
        store.close()
    if data is None:
        print(f"{args.job}: no such job held for review", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:

    operator = check_operator(args.operator) if args.operator else local_operator()
    masks_yaml = None
    if getattr(args, "masks", None) is not None:
        from anonymizer.review.sidecar import load_sidecars

        load_sidecars([args.masks])  # every error now, not when the daemon runs the job
        masks_yaml = args.masks.read_text(encoding="utf-8")
    store = _store(args, readonly=False)
    try:
        before = store.get(args.job)
        outcome = store.decide(args.job, args.decision, operator, time.time(), masks_yaml)
        deadline = time.monotonic() + max(0.0, args.wait)

        def applied() -> tuple[bool, str | None]:
            now = store.get(args.job)
            if now is None:
                return False, None
            # A rejection with masks may already be held again (a new round) when we look.
            again = now.state == "waiting" and before is not None and now.rounds > before.rounds
            return now.state in ("published", "rerun", "closed") or again, now.state

        done, state = applied()
        while args.wait and outcome == "recorded" and not done and time.monotonic() < deadline:
            time.sleep(0.2)
            done, state = applied()
    finally:
        store.close()
    word = "approve" if args.decision == "approved" else "reject"
    result = {"job_id": args.job, "decision": args.decision, "operator": operator, "recorded": outcome == "recorded",
              "state": state}
    if args.json:
        print(json.dumps(result))
    elif outcome == "unknown":
        print(f"{args.job}: no such job held for review", file=sys.stderr)
    elif outcome != "recorded":
        print(f"{args.job}: nothing to {word}: already {outcome}")
    else:
        print(f"{args.job}: {args.decision} by {operator}; " + (
            f"applied ({state})" if done else "the daemon applies it on its next pass"))
    if outcome == "unknown":
        return 1
    if outcome != "recorded":
        # A repeated approve/reject is no error (it changes nothing); a contrary one is.
        same = {"approved": ("approved", "published"), "rejected": ("rejected", "rerun", "closed")}[args.decision]
        return 0 if outcome in same else 1
    return 1 if args.wait and not done else 0
