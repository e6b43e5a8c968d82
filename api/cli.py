"""The `hub` command line: the entrypoint beside HTTP (serve now; import, projections, verify
and export join as their issues land)."""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import signal
import sys
from typing import Any

from pydantic import ValidationError

from hub.collect import keep_survivors_frozen
from hub.settings import Settings

# Modules that add their own subcommands: each has `register(commands)` taking the
# argparse sub-parsers; a subcommand sets `run=fn(args, settings) -> int`.
COMMAND_MODULES: list[str] = [
    "api.audit_cli",
    "api.keys_cli",
    "projections.cli",
    "adapters.demo",
    "adapters.file_import",
    "adapters.nats_cli",
    "api.health_cli",
]


OPEN_WARNING = """
  !!!  hub: RUNNING OPEN — no API key exists in this store, so EVERY caller is admitted
  !!!  with every role. Allowed on loopback only. Create a key to close it:
  !!!      hub keys create --role admin
"""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _key_counts(settings: Settings) -> tuple[int, int]:
    from api.app import build_hub

    hub = build_hub(settings)
    try:
        return hub.keys.counts()
    finally:
        hub.close()


def _stopping_server() -> type:
    import uvicorn

    class StoppingServer(uvicorn.Server):
        """Tells the app it is stopping as soon as a signal arrives, so open dashboard event
        streams end at once instead of holding up the graceful shutdown."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            app: Any = self.config.app  # the FastAPI app `serve` built, never an import path
            app.state.stopping = True
            super().handle_exit(sig, frame)

    return StoppingServer


def serve(args: argparse.Namespace, settings: Settings) -> int:
    created, active = _key_counts(settings)
    if not is_loopback(args.host) and active == 0:
        print(
            f"hub serve: refusing to listen on {args.host}: no API key exists "
            "(create one with `hub keys create --role admin`), or serve on 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    if created == 0:
        print(OPEN_WARNING, file=sys.stderr)
    elif active == 0:
        print("hub: every API key is revoked; only /healthz answers", file=sys.stderr)
    store = (
        "PostgreSQL"
        if settings.is_postgres
        else f"SQLite ({settings.eventsourcing_env()['SQLITE_DBNAME']})"
    )
    workers = args.workers or settings.api_workers
    if workers > 1 and not settings.is_postgres:
        print(
            "hub serve: --workers needs PostgreSQL (HUB_DATABASE_URL=postgresql://…): the "
            "embedded SQLite store takes one serving process",
            file=sys.stderr,
        )
        return 2
    many = f", {workers} worker processes" if workers > 1 else ""
    print(f"hub: serving on http://{args.host}:{args.port} with {store}{many}", file=sys.stderr)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it under the handler it found:
    # this one makes that a clean exit 0 (a supervisor then sees a stop, not a crash).
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    if workers == 1:
        return _run_server(args, settings)
    from api.serve_workers import bind, serve_forked

    bound = bind(args.host, args.port)

    def worker(index: int) -> int:
        # The embedded projections run in the first worker only.
        only_first = {"run_projections": settings.run_projections and index == 0}
        return _run_server(args, settings.model_copy(update=only_first), [bound])

    return serve_forked(bound, workers, worker)


def _run_server(
    args: argparse.Namespace, settings: Settings, sockets: list[Any] | None = None
) -> int:
    import uvicorn

    from api.app import create_app
    from api.limits import slow_client_guard

    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        # uvicorn formats each access line's path before its logger drops it: no access log
        # where its level would hide it anyway (`--log-level warning`, as the benches run).
        access_log=args.log_level.lower() in ("trace", "debug", "info"),
        http=slow_client_guard(settings.request_timeout_s),
        timeout_keep_alive=int(max(1, settings.keep_alive_s)),
        # SIGTERM: stop accepting, let in-flight requests finish (bounded by their own
        # timeout), then the lifespan commits what the group commit holds and closes.
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 5,
    )
    _stopping_server()(config).run(sockets=sockets)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Customer interaction hub")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="start the HTTP API")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--log-level", default="info")
    serve_cmd.add_argument(
        "--workers",
        type=int,
        choices=range(1, 65),
        metavar="N",
        help="server processes sharing the port (default HUB_API_WORKERS, 1; PostgreSQL only)",
    )
    serve_cmd.set_defaults(run=serve)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_survivors_frozen()  # every hub process holds caches that full collections walk
    try:
        settings = Settings()
    except ValidationError as error:  # a setting the environment got wrong: say which, exit 2
        for problem in error.errors(include_url=False):
            where = ".".join(str(part) for part in problem["loc"])
            name = f"HUB_{where.upper()}" if where else "settings"
            print(f"hub: {name}: {problem['msg']}", file=sys.stderr)
        return 2
    return int(args.run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
