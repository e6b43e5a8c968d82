"""`hub verify` and `hub export`: checking hash chains and writing history out for auditors."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import orjson

from hub import audit
from hub.export import verify_export
from hub.settings import Settings

if TYPE_CHECKING:
    from projections.replay import ReplayReport


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


def _print_replay(report: ReplayReport) -> int:
    for view in report.views:
        rows = sum(t.live_rows for t in view.tables)
        if view.ok:
            print(
                f"projection {view.name}: OK at position {view.position}, {rows} row(s); "
                f"digest {view.live_digest}"
            )
            continue
        print(
            f"DIFFERS projection {view.name} at position {view.position}: live digest "
            f"{view.live_digest}, rebuilt {view.rebuilt_digest}"
        )
        for table in view.tables:
            if not table.differences:
                continue
            print(
                f"  table {table.table}: {table.differences} differing row(s) "
                f"({table.live_rows} live, {table.rebuilt_rows} rebuilt)"
            )
            for found in table.examples:
                key = ", ".join(f"{k}={v}" for k, v in found["key"].items())
                columns = found.get("columns")
                detail = ""
                if columns:
                    detail = "; " + "; ".join(
                        f"{c}: live {orjson.dumps(v['live']).decode()}, "
                        f"rebuilt {orjson.dumps(v['rebuilt']).decode()}"
                        for c, v in columns.items()
                    )
                print(f"    {found['kind']} {key}{detail}")
    bad = [view.name for view in report.views if not view.ok]
    verdict = "OK" if not bad else f"FAILED: {', '.join(bad)} differ from a rebuild"
    print(f"projections {verdict}; {report.replayed} event(s) replayed")
    return 0 if report.ok else 1


def verify(args: argparse.Namespace, settings: Settings) -> int:
    if args.projections and (args.file or args.customer):
        print("hub: --projections checks every projection of the store; it takes no "
              "--file or --customer", file=sys.stderr)  # fmt: skip
        return 2
    if args.file:
        with open(args.file, "rb") as export:
            return _print_report(verify_export(iter(export)), args.json)
    hub = _hub(settings)
    try:
        report = hub.verify(args.customer)
        if not args.projections:
            return _print_report(report, args.json)
        from projections.replay import check_projections
        from projections.runner import build_projections

        replay = check_projections(build_projections(hub, settings))
        if args.json:
            doc = {
                **report.as_dict(),
                "ok": report.ok and replay.ok,
                "projections": replay.as_dict(),
            }
            sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
            return 0 if doc["ok"] else 1
        return max(_print_report(report, False), _print_replay(replay))
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
    verify_cmd.add_argument(
        "--projections",
        action="store_true",
        help="also rebuild every projection in scratch tables and compare it with the live one",
    )
    verify_cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    verify_cmd.set_defaults(run=verify)
    export_cmd = commands.add_parser(
        "export", help="write events as JSON lines in log order, with hashes, to stdout"
    )
    export_cmd.add_argument("--customer", help="only this customer's streams")
    export_cmd.add_argument("--since", type=int, default=0, help="only events after this position")
    export_cmd.set_defaults(run=export)
