"""`hub verify` and `hub export`: checking hash chains and writing history out for auditors."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from hub import audit
from hub.settings import Settings


def _hub(settings: Settings) -> Any:
    from api.app import build_hub

    return build_hub(settings)


def _print_report(report: audit.Report, as_json: bool) -> int:
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        for found in report.breaks:
            where = f"customer {found.stream}" if found.stream else "export"
            at = f" version {found.version}" if found.version is not None else ""
            pos = f" (position {found.position})" if found.position is not None else ""
            print(f"BREAK {found.kind}: {where}{at}{pos}: {found.detail}")
        verdict = "OK" if report.ok else f"FAILED: {len(report.breaks)} break(s)"
        print(
            f"{verdict}; {report.streams} stream(s), {report.events} event(s); "
            f"heads digest {report.heads_digest}"
        )
    return 0 if report.ok else 1


def verify(args: argparse.Namespace, settings: Settings) -> int:
    if args.file:
        with open(args.file, "rb") as export:
            return _print_report(audit.verify_export(iter(export)), args.json)
    hub = _hub(settings)
    try:
        return _print_report(hub.verify(args.customer), args.json)
    finally:
        hub.close()


def export(args: argparse.Namespace, settings: Settings) -> int:
    hub = _hub(settings)
    out = sys.stdout.buffer
    try:
        count = hub.export(out.write, args.customer, args.since)
    finally:
        out.flush()
        hub.close()
    print(f"hub: exported {count} event(s)", file=sys.stderr)
    return 0


def register(commands: Any) -> None:
    verify_cmd = commands.add_parser(
        "verify", help="check the hash chains of the store, of one customer, or of an export"
    )
    verify_cmd.add_argument("--customer", help="only this customer's streams")
    verify_cmd.add_argument("--file", help="verify an export file offline (no store needed)")
    verify_cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    verify_cmd.set_defaults(run=verify)
    export_cmd = commands.add_parser(
        "export", help="write events as JSON lines in log order, with hashes, to stdout"
    )
    export_cmd.add_argument("--customer", help="only this customer's streams")
    export_cmd.add_argument("--since", type=int, default=0, help="only events after this position")
    export_cmd.set_defaults(run=export)
