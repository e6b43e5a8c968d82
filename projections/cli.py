"""`hub project` (run the projections as their own process or processes) and
`hub projections rebuild|status`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

import orjson

from hub.settings import Settings
from projections.runner import VIEW_NAMES, Projections, build_projections
from projections.workers import Supervisor, partition


def _projections(settings: Settings, views: list[str] | None = None) -> Projections:
    from api.app import build_hub

    return build_projections(build_hub(settings), settings, views)


def _chosen_views(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VIEW_NAMES]
    if unknown:
        raise SystemExit(f"hub: no projection {unknown[0]!r}; known: {', '.join(VIEW_NAMES)}")
    return [name for name in VIEW_NAMES if name in names] if names else list(VIEW_NAMES)


def project(args: argparse.Namespace, settings: Settings) -> int:
    views = _chosen_views(args.views if args.views is not None else settings.projection_views)
    workers = args.workers or settings.projection_workers
    if workers > 1 and len(views) > 1:
        groups = partition(views, workers)
        print(
            "hub: projection workers: " + "; ".join(",".join(group) for group in groups),
            file=sys.stderr,
        )
        supervisor = Supervisor(groups)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: supervisor.stop())
        return supervisor.run()
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    projections = _projections(settings, views)
    try:
        started = time.monotonic()
        caught = projections.catch_up(until=done)
        print(
            f"hub: {','.join(views)}: caught up {caught} event(s) in "
            f"{time.monotonic() - started:.1f} s; following",
            file=sys.stderr,
        )
        projections.start()
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
    project_cmd.add_argument(
        "--workers",
        type=int,
        help="processes to split the views over (default HUB_PROJECTION_WORKERS, 1)",
    )
    project_cmd.add_argument(
        "--views",
        help="only these views, comma-separated (default HUB_PROJECTION_VIEWS, every one): "
        + ",".join(VIEW_NAMES),
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
