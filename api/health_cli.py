"""`hub health ROLE`: the health check of each process role (the containers' healthchecks).

Exit 0 when healthy, 1 when not; one JSON line on stdout says what was seen. Every check asks
the shared state the role keeps (the store, the broker), never a file of the process:

- `api`: `GET /healthz` of the server answers 200 with `"status": "ok"` (its store answers).
- `ingest`: the store answers, and the durable consumer exists on the inbound stream; when it
  has messages waiting, someone is pulling them (a waiting fetch or unacked deliveries); with
  partitions, no message waits on a subject whose token is no partition below
  HUB_NATS_PARTITIONS (no worker would ever take it).
- `project`: the store answers and every projection is within `--max-lag` of the log's head.
- `publish`: the store answers, the events stream exists, and the published position is within
  `--max-lag` of the log's head.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from hub.settings import Settings

SAMPLES = 3  # consumer samples before an idle-with-backlog consumer is called unhealthy
SAMPLE_GAP_S = 0.3


class Unhealthy(Exception):
    """A check failed; the message says why, `seen` what was found."""

    def __init__(self, reason: str, **seen: Any):
        super().__init__(reason)
        self.seen = seen


def _store_head(settings: Settings) -> tuple[Any, int]:
    from api.app import build_hub

    hub = build_hub(settings.model_copy(update={"pool_size": 1}))
    return hub, hub.recorder.max_notification_id() or 0


async def _nats(settings: Settings) -> Any:
    import nats

    # No reconnecting: a health check reports a broker that is down, it does not wait for it.
    return await nats.connect(
        settings.nats_url, connect_timeout=3, allow_reconnect=False, max_reconnect_attempts=0
    )


def check_api(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    # urllib, not httpx: the image installs the runtime dependencies only.
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout) as answer:
            body = orjson.loads(answer.read())
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError) as error:
        raise Unhealthy(f"{args.url}: {error!r}") from error
    if body.get("status") != "ok":
        raise Unhealthy(f"{args.url}: {body}")
    return dict(body)


def check_ingest(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from nats.js.errors import NotFoundError

    from adapters.nats_ingest import consumer_of

    _, durable = consumer_of(settings)  # a partition's worker: its own consumer
    hub, head = _store_head(settings)
    hub.close()

    async def consumer() -> dict[str, Any]:
        nc = await _nats(settings)
        try:
            js = nc.jetstream()
            seen: dict[str, Any] = {}
            for sample in range(SAMPLES):
                try:
                    info = await js.consumer_info(settings.nats_stream, durable)
                except NotFoundError as error:
                    raise Unhealthy(
                        f"no consumer {durable} on stream {settings.nats_stream}"
                    ) from error
                seen = {
                    "pending": info.num_pending or 0,
                    "ack_pending": info.num_ack_pending or 0,
                    "waiting": info.num_waiting or 0,
                }
                if not seen["pending"] or seen["ack_pending"] or seen["waiting"]:
                    await _no_strays(js, settings)
                    return seen
                if sample < SAMPLES - 1:
                    await asyncio.sleep(SAMPLE_GAP_S)
            raise Unhealthy(f"{seen['pending']} message(s) waiting and nobody is fetching", **seen)
        finally:
            await nc.close()

    return {"head": head, **asyncio.run(consumer())}


async def _no_strays(js: Any, settings: Settings) -> None:
    """With partitions, the stream keeps every `<prefix>.<channel>.<token>`: messages whose
    token is no partition below HUB_NATS_PARTITIONS are recorded by no worker, ever."""
    if not settings.nats_partitions:
        return  # the stream takes no partitioned subject
    prefix = settings.nats_subject_prefix
    info = await js.stream_info(settings.nats_stream, subjects_filter=f"{prefix}.*.*")
    partitions = {str(p) for p in range(settings.nats_partitions)}
    rejected = settings.nats_rejected_prefix + "."
    strays = {
        subject: count
        for subject, count in (info.state.subjects or {}).items()
        if not subject.startswith(rejected) and subject.rsplit(".", 1)[1] not in partitions
    }
    if strays:
        named = ", ".join(sorted(strays)[:5])
        raise Unhealthy(
            f"{sum(strays.values())} message(s) on subjects no partition's worker takes "
            f"({named}): publish to partitions below {settings.nats_partitions}",
            strays=strays,
        )


def check_project(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from projections.runner import build_projections

    hub, head = _store_head(settings)
    try:
        rows = build_projections(hub, settings).status()
    finally:
        hub.close()
    lag = max((row["lag"] for row in rows), default=0)
    if args.max_lag is not None and lag > args.max_lag:
        behind = [row["name"] for row in rows if row["lag"] > args.max_lag]
        raise Unhealthy(
            f"{', '.join(behind)} more than {args.max_lag} event(s) behind", head=head, lag=lag
        )
    return {"head": head, "lag": lag}


def check_publish(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from nats.js.errors import NotFoundError

    from adapters.nats_publish import POSITION_HEADER, tracking_recorder

    hub, head = _store_head(settings)
    try:
        name = f"{settings.nats_publisher}:{settings.nats_events_stream}"
        tracked = tracking_recorder(hub).max_tracking_id(name) or 0
    finally:
        hub.close()

    async def in_stream() -> int:
        nc = await _nats(settings)
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info(settings.nats_events_stream)
            except NotFoundError as error:
                raise Unhealthy(f"no events stream {settings.nats_events_stream}") from error
            if not info.state.last_seq:
                return 0
            last = await js.get_msg(settings.nats_events_stream, info.state.last_seq)
            return int((last.headers or {}).get(POSITION_HEADER, 0))
        finally:
            await nc.close()

    position = max(tracked, asyncio.run(in_stream()))
    lag = max(0, head - position)
    if args.max_lag is not None and lag > args.max_lag:
        raise Unhealthy(
            f"publisher {lag} event(s) behind the log", head=head, position=position, lag=lag
        )
    return {"head": head, "position": position, "lag": lag}


CHECKS: dict[str, Callable[[argparse.Namespace, Settings], dict[str, Any]]] = {
    "api": check_api,
    "ingest": check_ingest,
    "project": check_project,
    "publish": check_publish,
}


def health(args: argparse.Namespace, settings: Settings) -> int:
    started = time.monotonic()
    try:
        seen = CHECKS[args.role](args, settings)
    except Unhealthy as error:
        report = {"role": args.role, "healthy": False, "reason": str(error), **error.seen}
        code = 1
    except Exception as error:  # store or broker unreachable: unhealthy, said plainly
        report = {"role": args.role, "healthy": False, "reason": repr(error)}
        code = 1
    else:
        report = {"role": args.role, "healthy": True, **seen}
        code = 0
    report["took_s"] = round(time.monotonic() - started, 3)
    sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    return code


def register(commands: Any) -> None:
    cmd = commands.add_parser("health", help="check one role's health (exit 0 healthy, 1 not)")
    cmd.add_argument("role", choices=sorted(CHECKS), help="the role to check")
    cmd.add_argument(
        "--url", default="http://127.0.0.1:8000/healthz", help="api: the server's /healthz"
    )
    cmd.add_argument("--timeout", type=float, default=5.0, help="api: seconds to wait")
    cmd.add_argument(
        "--max-lag",
        type=int,
        help="project, publish: most events behind the log's head that is still healthy",
    )
    cmd.set_defaults(run=health)
