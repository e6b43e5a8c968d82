"""`hub project` (run the projections as their own process) and `hub projections rebuild|status`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

import orjson

from hub.settings import Settings
from projections.runner import Projections, build_projections


def _projections(settings: Settings) -> Projections:
    from api.app import build_hub

    return build_projections(build_hub(settings), settings)


def project(args: argparse.Namespace, settings: Settings) -> int:
    projections = _projections(settings)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    started = time.monotonic()
    caught = projections.catch_up()
    print(
        f"hub: caught up {caught} event(s) in {time.monotonic() - started:.1f} s; following",
        file=sys.stderr,
    )
    projections.start()
    try:
        done.wait()
    finally:
        projections.stop()
        projections.hub.close()
    return 0


def rebuild(args: argparse.Namespace, settings: Settings) -> int:
    projections = _projections(settings)
    try:
        names = [args.name] if args.name else None
        unknown = [n for n in names or () if n not in projections.by_name]
        if unknown:
            print(
                f"hub: no projection {unknown[0]!r}; known: {', '.join(projections.names)}",
                file=sys.stderr,
            )
            return 2
        started = time.monotonic()
        count = projections.rebuild(names)
        took = time.monotonic() - started
        rate = count / took if took else 0.0
        print(
            f"hub: rebuilt {', '.join(names or projections.names)} from {count} event(s) "
            f"in {took:.1f} s ({rate:,.0f} events/s)",
            file=sys.stderr,
        )
        return 0
    finally:
        projections.hub.close()


def status(args: argparse.Namespace, settings: Settings) -> int:
    projections = _projections(settings)
    try:
        rows = projections.status()
    finally:
        projections.hub.close()
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(rows) + b"\n")
    else:
        print(f"{'projection':<12} {'position':>10} {'lag':>10}")
        for row in rows:
            print(f"{row['name']:<12} {row['position']:>10} {row['lag']:>10}")
    return 0


def register(commands: Any) -> None:
    project_cmd = commands.add_parser(
        "project", help="keep the projections up to date (catch up, then follow the log)"
    )
    project_cmd.set_defaults(run=project)
    group = commands.add_parser("projections", help="rebuild projections or show their status")
    sub = group.add_subparsers(dest="projections_command", required=True)
    rebuild_cmd = sub.add_parser("rebuild", help="rebuild one projection (or all) from zero")
    rebuild_cmd.add_argument("name", nargs="?", help="the projection (default: every one)")
    rebuild_cmd.set_defaults(run=rebuild)
    status_cmd = sub.add_parser("status", help="each projection's position and lag")
    status_cmd.add_argument("--json", action="store_true")
    status_cmd.set_defaults(run=status)
