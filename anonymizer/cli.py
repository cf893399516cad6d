"""Command line: ``anonymizer process | validate-config | evaluate | daemon | status | audit | demo``."""

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

    def update(stage: str, done: int, total: int) -> None:
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
    engine = Engine(profile)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    show_bar = sys.stderr.isatty() and not args.json
    for src, dst, direct in _inputs(args.inputs, out):
        progress, close = _progress_bar(show_bar)
        try:
            if not src.exists() and not src.is_symlink():
                raise FileNotFoundError(2, "no such file")
            if dst.exists() and not args.overwrite:
                raise FileExistsError(17, "output exists (use --overwrite)")
            created = _make_parents(dst.parent)
            try:
                result = engine.process(src, dst, progress, follow_symlinks=direct)
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
        if args.json:
            print(json.dumps({"input": str(src), "output": str(result.output_path), "ok": True, **result.summary()}))
        else:
            counts = ", ".join(f"{c.regions} {name} regions" for name, c in result.counts.items())
            print(f"OK     {src} -> {result.output_path} ({counts}, {result.timings['total_s']:.1f}s)")
    return 1 if failures else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from anonymizer.config import load_profile

    failed = 0
    for path in args.profiles:
        try:
            profile = load_profile(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: valid (profile {profile.name!r}, sha256 {profile.sha256[:16]})")
    return 1 if failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    from anonymizer.config import load_profile
    from anonymizer.detect.factory import build_detectors

    profile = load_profile(args.profile)
    _, models, device = build_detectors(profile.detect)
    print(json.dumps({"device": device, "models": [m.as_audit() | {"path": m.path} for m in models]}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anonymizer",
        description="Hide faces and licence plates in photos and videos, on premise.",
    )
    parser.add_argument("--version", action="version", version=f"anonymizer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("process", help="anonymize files or folders (recursively) into --out")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="photo/video files or folders")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (mirrors input folders)")
    p.add_argument("--profile", type=Path, help="YAML profile (default: the built-in max-recall profile)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--json", action="store_true", help="one JSON line per input instead of text")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("validate-config", help="check profiles; exit 1 naming file, key and allowed values")
    p.add_argument("profiles", nargs="+", type=Path, metavar="PROFILE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("models", help="show the models a profile uses, with SHA-256 of their weights")
    p.add_argument("--profile", type=Path)
    p.set_defaults(func=cmd_models)

    from anonymizer.daemon.commands import register as register_daemon
    from anonymizer.evaluate.commands import register as register_evaluate

    register_daemon(sub)
    register_evaluate(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
