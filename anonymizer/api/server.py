"""``anonymizer api``: serve the job API with uvicorn (TLS from api.tls_cert / api.tls_key).

It runs beside the daemon (its own process and systemd unit) on the same config: the API only
receives uploads into the daemon's folders and reads results back from the journal; the daemon
does the work. Logs are the daemon's structlog JSON lines; uvicorn's own access log is off (our
``api.request`` line names the route template, never a query string or header).

Imports inside the command functions are deliberate: ``anonymizer --help`` and every other
command build this parser without loading OpenCV, PyAV, onnxruntime, FastAPI or Celery.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from anonymizer.errors import ConfigError


def openapi_document() -> dict:
    """The OpenAPI document of the app (what docs/openapi.json holds)."""
    from anonymizer.api.app import build_app

    return build_app().openapi()


def write_openapi(path: Path) -> None:
    path.write_text(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def run_api(config_path: Path, *, log_level: str = "info") -> int:
    import uvicorn

    from anonymizer.api.app import ApiService, build_app
    from anonymizer.logs import configure_logging, get_logger
    from anonymizer.settings.daemon import load_daemon_config

    configure_logging(log_level)
    cfg = load_daemon_config(config_path)
    if cfg.api is None:
        raise ConfigError(f"{cfg.source_path}: at 'api': the config has no api: section to serve")
    log = get_logger(component="api")
    try:
        service = ApiService(cfg, log)
    except OSError as exc:
        # state_dir, audit_dir and the key come from the operator's config: naming them is safe.
        where = f" ({exc.filename})" if exc.filename else ""
        log.error("api.startup_failed", error=f"{exc.strerror or type(exc).__name__}{where}")
        return 6
    api = cfg.api
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(service),
            host=api.host,
            port=api.port,
            log_config=None,
            access_log=False,
            log_level="warning",
            ssl_certfile=str(api.tls_cert) if api.tls_cert else None,
            ssl_keyfile=str(api.tls_key) if api.tls_key else None,
            server_header=False,
        )
    )
    log.info("api.ready", host=api.host, port=api.port, tls=api.tls_cert is not None, profiles=len(api.profiles))
    stopped_by: list[int] = []
    with _signals_recorded(stopped_by):
        ok = server.run()
    service.inbox.close()
    reason = signal.Signals(stopped_by[0]).name if stopped_by else "server"
    log.info("api.stopped", reason=reason)
    return 0 if ok is not False else 1


@contextlib.contextmanager
def _signals_recorded(into: list[int]) -> Iterator[None]:
    """Handle SIGTERM/SIGINT by recording them. uvicorn installs its own handlers while it serves
    and, once shut down, raises the signals it caught again against the handlers it found: with
    the default ones the process then dies by the signal (exit 143 on SIGTERM) before our stop
    line. With these, the raised signal is only recorded and the API exits 0 (docs/api.md)."""
    wanted = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, lambda sig, _frame: into.append(sig)) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_api(args: argparse.Namespace) -> int:
    if args.action == "dev-token":
        from anonymizer.api.devtoken import dev_token, read_target

        if args.config is None:
            raise ConfigError("anonymizer api dev-token: --config FILE is required")
        print(dev_token(read_target(args.config), client=args.client, scope=args.scope, ttl_s=args.ttl))
        return 0
    if args.openapi:
        if args.openapi == "-":
            json.dump(openapi_document(), sys.stdout, indent=2, sort_keys=True)
            print()
        else:
            write_openapi(Path(args.openapi))
        return 0
    if args.config is None:
        raise ConfigError("anonymizer api: --config FILE is required (or --openapi FILE)")
    return run_api(args.config, log_level=args.log_level)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "api",
        help="serve the REST job API (uploads into the daemon's folders; see docs/api.md)",
        description=(
            "Serve POST/GET/DELETE /v1/jobs with uvicorn on the config's api.listen address, TLS when "
            "api.tls_cert/api.tls_key are set. Bearer JWTs are checked against api.jwks_file. Uploads "
            "go into the input of the folder a profile name maps to, and the daemon (running on the same "
            "config) processes them. --openapi FILE writes the OpenAPI document instead ('-': stdout). "
            "'anonymizer api dev-token --config FILE' makes a local signing key and api.jwks_file (once) "
            "and prints a short-lived token, for trials on loopback (docs/api.md)."
        ),
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="daemon config YAML with an api: section")
    p.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error"), help="log level (default: info)"
    )
    p.add_argument("--openapi", metavar="FILE", help="write the OpenAPI document and exit")
    p.add_argument("action", nargs="?", choices=("dev-token",), help="dev-token: print a token for a loopback trial")
    p.add_argument("--client", default="dev", help="dev-token: the token's client_id (default: dev)")
    p.add_argument(
        "--scope",
        default="jobs:submit jobs:read",
        help="dev-token: space-separated scopes (default: jobs:submit jobs:read)",
    )
    p.add_argument(
        "--ttl", type=int, default=3600, metavar="SECONDS", help="dev-token: lifetime (default 3600, at most 86400)"
    )
    p.set_defaults(func=cmd_api)
