"""Command line: ``anonymizer process | validate-config | evaluate | daemon | status | audit | demo | worker``.

Imports inside the command functions are deliberate: ``anonymizer --help`` and every other
command build this parser without loading OpenCV, PyAV, onnxruntime, FastAPI or Celery.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from anonymizer import __version__
from anonymizer.errors import AnonymizerError, ConfigError, ModelError


def _inputs(paths: list[Path], out: Path) -> Iterator[tuple[Path, Path, bool]]:
    """Yield (source, destination, named directly) for files and, recursively, folders."""
    for path in paths:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                # Never descend into the output folder if it sits inside an input folder.
                dirs[:] = [d for d in dirs if (Path(root) / d).resolve() != out.resolve()]
                for name in sorted(files):
                    src = Path(root) / name
                    yield src, out / src.relative_to(path), False
        else:
            yield path, out / path.name, True


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return the ones created, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            return  # not empty (another input's output is there): keep it and its parents


def _progress_bar(enabled: bool):
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=0, unit="frame", leave=False, dynamic_ncols=True)

    def update(stage: str, done: int, total: int, **_: int) -> None:
        bar.set_description(stage)
        if total and bar.total != total:
            bar.reset(total=total)
        bar.n = done
        bar.refresh()

    return update, bar.close


def cmd_process(args: argparse.Namespace) -> int:
    from anonymizer.config import load_profile
    from anonymizer.pipeline import Engine

    profile = load_profile(args.profile)
    given_masks = _given_masks(args)
    engine = Engine(profile)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    failures = skipped = 0
    show_bar = sys.stderr.isatty() and not args.json
    for src, dst, direct in _inputs(args.inputs, out):
        reason = None if direct else _not_media(src)
        if reason is not None:
            # A folder holds notes, licences and sidecar files beside the media; they are no
            # failure. A file named directly, or one called like media, still fails (below).
            skipped += 1
            if args.json:
                print(json.dumps({"input": str(src), "skipped": True, "reason": reason}))
            continue
        progress, close = _progress_bar(show_bar)
        try:
            if not src.exists() and not src.is_symlink():
                raise FileNotFoundError(2, "no such file")
            if dst.exists() and not args.overwrite:
                raise FileExistsError(17, "output exists (use --overwrite)")
            created = _make_parents(dst.parent)
            try:
                masks = given_masks if given_masks is not None else _sidecar_masks(src)
                result = engine.process(src, dst, progress, follow_symlinks=direct, masks=masks)
            except BaseException:
                _remove_empty(created)  # a refused input leaves nothing behind, not even folders
                raise
        except (AnonymizerError, OSError) as exc:
            failures += 1
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            reason = " ".join(reason.split())  # one line, whatever the library said
            if args.json:
                print(json.dumps({"input": str(src), "ok": False, "reason": reason}))
            else:
                print(f"FAILED {src}: {reason}", file=sys.stderr)
            continue
        finally:
            close()
        report = _write_report(args, result, profile)
        if args.json:
            extra = {"report": str(report)} if report is not None else {}
            print(json.dumps({"input": str(src), "output": str(result.output_path), "ok": True, **result.summary(), **extra}))
        else:
            counts = ", ".join(f"{c.regions} {name} regions" for name, c in result.counts.items())
            print(f"OK     {src} -> {result.output_path} ({counts}, {result.timings['total_s']:.1f}s)")
    if skipped and not args.json:
        print(f"skipped {skipped} file(s) in folders that are not photos or videos", file=sys.stderr)
    return 1 if failures else 0


def _given_masks(args: argparse.Namespace):
    """The --masks file, validated (None when not given). Raise ConfigError for a bad file."""
    if args.masks is None:
        return None
    if len(args.inputs) != 1 or args.inputs[0].is_dir():
        raise ConfigError("--masks applies to one input file; for folders put <name>.masks.yaml beside each source")
    from anonymizer.review.sidecar import load_sidecars

    return load_sidecars([args.masks])


def _sidecar_masks(src: Path):
    """The sidecar files beside ``src`` (its own and its folder's), validated; None if there are none."""
    from anonymizer.review.sidecar import load_sidecars, sidecars_of

    paths = sidecars_of(src)
    return load_sidecars(paths) if paths else None


def _write_report(args: argparse.Namespace, result, profile) -> Path | None:
    """Write the QA report of one output into --report (named after the output); return the HTML path."""
    if args.report is None:
        return None
    from anonymizer.review.report import report_for_result

    name = result.output_path.name if profile.privacy.log_file_names else None
    html_path, _ = report_for_result(result, profile, args.report, result.output_path.name, file_name=name)
    return html_path


def _not_media(path: Path) -> str | None:
    """The reason to skip a file found in a folder, or None when it is to be processed.

    Skipped: content that is plainly no photo or video (text, markup, audio, unknown bytes) under
    a name that does not claim to be media either. Everything else goes to the engine, so an empty,
    truncated or mislabelled ``x.jpg``, a playlist or a link is reported as a failure.
    """
    from anonymizer.media.sniff import NotMediaError, looks_like_media_name, sniff

    if looks_like_media_name(path):
        return None
    try:
        sniff(path)
    except NotMediaError as exc:
        return str(exc)
    except (AnonymizerError, OSError):
        return None  # the engine reports it with its reason
    return None


def _config_kind(path: Path) -> str:
    """'daemon' when the file's top level has a daemon config's keys, else 'profile'.

    The two share no top-level key, so one daemon key decides: a daemon config checked as a profile
    would only say that its keys are unknown, which hides every real problem in it.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "profile"  # the loader reports the unreadable file or the YAML error itself
    from anonymizer.settings.daemon import TOP_KEYS
    from anonymizer.settings.scaleout import WORKER_KEYS

    keys = set(map(str, data)) if isinstance(data, dict) else set()
    daemon_only = TOP_KEYS - WORKER_KEYS  # no profile has any of these either
    if "broker" in keys and not keys & daemon_only:
        return "worker"  # `anonymizer worker --config`: a broker and no folders
    if keys & (daemon_only | {"broker"}):
        return "daemon"
    return "profile"


def cmd_validate(args: argparse.Namespace) -> int:
    from anonymizer.config import load_profile
    from anonymizer.settings.daemon import load_daemon_config

    if args.print_defaults:
        from anonymizer.config_docs import default_profile_yaml

        sys.stdout.write(default_profile_yaml())
        return 0
    if not args.files:
        print("error: name a FILE to check (or --print-defaults)", file=sys.stderr)
        return 2
    failed = 0
    for path in args.files:
        try:
            kind = _config_kind(path)
            if path.name.lower().endswith(".masks.yaml"):
                # A sidecar (docs/review.md): its own format; whether it fits its media is checked
                # when the job starts.
                from anonymizer.review.sidecar import load_sidecars

                masks = load_sidecars([path])
                print(f"{path}: valid sidecar, {len(masks.regions)} region(s), {len(masks.exclusions)} exclusion(s)")
            elif kind == "worker":
                from anonymizer.settings.scaleout import load_worker_config, redacted

                wcfg = load_worker_config(path)
                print(f"{path}: valid worker config, broker {redacted(wcfg.broker)}, concurrency {wcfg.concurrency}")
            elif kind == "daemon":
                cfg = load_daemon_config(path)
                folders = ", ".join(f"{f.name} (profile sha256 {f.profile.sha256[:16]})" for f in cfg.folders)
                print(f"{path}: valid daemon config, {len(cfg.folders)} folder(s): {folders}")
                for f in cfg.folders:
                    for warning in f.profile.photo_recall_warnings():
                        print(f"warning: folder {f.name}: {f.profile_path}: {warning}", file=sys.stderr)
                if cfg.api is not None:
                    names = ", ".join(f"{n} -> {f}" for n, f in cfg.api.profiles)
                    tls = "https" if cfg.api.tls_cert else "http"
                    print(f"  api: {tls}://{cfg.api.host}:{cfg.api.port}, profiles {names}")
                if cfg.broker is not None:
                    from anonymizer.settings.scaleout import redacted

                    print(f"  broker: {redacted(cfg.broker.url)} (jobs run on `anonymizer worker` processes), "
                          f"{cfg.broker.in_flight} in flight at most")
                for b in cfg.buckets:
                    print(f"  bucket {b.name}: s3://{b.source_bucket}/{b.source_prefix} -> s3://{b.sink_bucket}/"
                          f"{b.sink_prefix} via folder {b.folder}, source {b.retention}")  # fmt: skip
            else:
                profile = load_profile(path)
                print(f"{path}: valid profile {profile.name!r}, sha256 {profile.sha256[:16]}")
                for warning in profile.photo_recall_warnings():
                    print(f"warning: {path}: {warning}", file=sys.stderr)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    from anonymizer.config import load_profile
    from anonymizer.detect.factory import build_detectors, build_text_cue

    if args.build_int8:
        from anonymizer.detect.int8 import build_all

        print(json.dumps({"int8": build_all()}, indent=2))
        return 0
    profile = load_profile(args.profile)
    _, models, device = build_detectors(profile.detect)
    text = build_text_cue(profile.detect)  # photos' plate text cue (detect.plate_text)
    models = models + ([text.info] if text is not None else [])
    print(json.dumps({"device": device, "models": [m.as_audit() | {"path": m.path} for m in models]}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anonymizer",
        description="Hide faces and licence plates in photos and videos, on premise.",
    )
    parser.add_argument("--version", action="version", version=f"anonymizer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "process",
        help="anonymize files or folders (recursively) into --out",
        description=(
            "Anonymize photos and videos into --out. A folder is walked recursively and mirrored under "
            "--out; files in it that are not photos or videos (notes, licences) are skipped and counted. "
            "Exit 0 when every photo/video succeeded, 1 when any failed (one FAILED line each on stderr), "
            "2 for an invalid profile or a missing model."
        ),
    )
    p.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT",
        help="photo/video files or folders; a file named directly must be a photo or video",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (mirrors input folders)")
    p.add_argument(
        "--profile", type=Path, metavar="FILE", help="YAML profile (default: the built-in max-recall profile)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--json", action="store_true", help="one JSON line per input instead of text")
    p.add_argument(
        "--masks", type=Path, metavar="FILE",
        help=(
            "sidecar of manual regions and exclusions for the one INPUT (default: <name>.masks.yaml "
            "and the folder's .masks.yaml beside each source, when present; see docs/review.md)"
        ),
    )
    p.add_argument(
        "--report", type=Path, metavar="DIR",
        help="write a QA report per output into DIR: <output name>.qa.html (self-contained) and .qa.json",
    )
    p.set_defaults(func=cmd_process)

    p = sub.add_parser(
        "validate-config",
        help="check profiles and daemon configs; exit 1 naming file, key and allowed values",
        description=(
            "Check profile, daemon and worker config files without running anything. Each file's kind "
            "is told from its keys (a daemon config has state_dir/audit_dir/folders, a worker config a "
            "broker and no folders); a daemon config "
            "is checked as a whole, with each folder's profile and the folder layout; a file named "
            "*.masks.yaml as a sidecar of manual masks (docs/review.md). Every error "
            "of a file is listed in one round. Exit 0 when all are valid, 1 otherwise. "
            "--print-defaults prints the commented default profile instead, generated from the schema."
        ),
    )
    p.add_argument("files", nargs="*", type=Path, metavar="FILE", help="profile, daemon or worker config YAML, or a .masks.yaml sidecar")
    p.add_argument(
        "--print-defaults", action="store_true",
        help="print a sample profile of every key with its default and doc (profiles/default.yaml is this text)",
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "models",
        help="show the models a profile uses, with SHA-256 of their weights",
        description=(
            "Load the detectors a profile configures (nothing is downloaded) and print, as JSON, the "
            "device they run on and each model's id, licence, weights path and SHA-256: the identities "
            "every job summary and audit record carries (for an int8 graph, also the derived graph's "
            "SHA-256 and the recipe). Exit 2 when a model cannot be loaded."
        ),
    )
    p.add_argument(
        "--profile", type=Path, metavar="FILE", help="YAML profile (default: the built-in max-recall profile)"
    )
    p.add_argument(
        "--build-int8", action="store_true",
        help="derive (or check the cached) int8 graphs of the built-in models now, instead of at first use, "
        "into $ANONYMIZER_MODEL_CACHE or $XDG_CACHE_HOME/anonymizer (run as the daemon's user with "
        "ANONYMIZER_MODEL_CACHE=<state_dir>/models to fill the daemon's cache); print their SHA-256",
    )
    p.set_defaults(func=cmd_models)

    from anonymizer.daemon.commands import register as register_daemon
    from anonymizer.evaluate.commands import register as register_evaluate

    register_daemon(sub)
    register_evaluate(sub)
    from anonymizer.daemon.review_commands import register as register_review

    register_review(sub)
    from anonymizer.scaleout.commands import register as register_dist

    register_dist(sub)
    from anonymizer.api.server import register as register_api

    register_api(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from anonymizer.logs import configure_logging
    from anonymizer.media.memory import return_large_buffers

    # Until a service reconfigures it for journald (stdout), a one-shot command's warnings go to
    # stderr as JSON lines: stdout is the command's own output, which scripts parse.
    configure_logging(stream="stderr")

    return_large_buffers()  # before any frame is decoded: RSS stays flat over long 4K clips
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, where a reader that has gone is handled, not at exit
        return code
    except (ConfigError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `anonymizer status | head`: the reader has gone, so the rest is moot. Point stdout at
        # /dev/null so that the interpreter's own flush at exit does not fail again, and exit as
        # a process killed by SIGPIPE would (128 + 13), without a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
