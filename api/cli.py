"""The `hub` command line: the entrypoint beside HTTP (serve now; import, projections, verify
and export join as their issues land)."""

from __future__ import annotations

import argparse
import importlib
import sys

from hub.settings import Settings

# Modules that add their own subcommands: each has `register(commands)` taking the
# argparse sub-parsers; a subcommand sets `run=fn(args, settings) -> int`.
COMMAND_MODULES: list[str] = [
    "api.audit_cli",
    "projections.cli",
    "adapters.demo",
    "adapters.file_import",
    "adapters.nats_cli",
]


def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import create_app

    store = (
        "PostgreSQL"
        if settings.is_postgres
        else f"SQLite ({settings.eventsourcing_env()['SQLITE_DBNAME']})"
    )
    print(f"hub: serving on http://{args.host}:{args.port} with {store}", file=sys.stderr)
    # Open dashboards hold event streams: stop waiting for them after a few seconds.
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=3,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Customer interaction hub")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="start the HTTP API")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--log-level", default="info")
    serve_cmd.set_defaults(run=serve)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args, Settings()))


if __name__ == "__main__":
    sys.exit(main())
