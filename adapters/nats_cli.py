"""`hub ingest nats` (touchpoints in from JetStream) and `hub publish nats` (events out)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from hub.settings import Settings

T = TypeVar("T")
LAG_POLL_S = 2.0


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.WARNING, format="hub: %(levelname)s %(name)s: %(message)s")


def run_on_uvloop(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop, as `hub serve` does: nats-py's per-message futures and tasks cost the
    event loop less there (consuming alone, 48-54 µs of CPU a message against 62-80)."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _stop_on_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set `stop`; called before the process says it is ready, so a
    supervisor that signals it at once gets a clean stop, not a death by the signal."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


def ingest(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.nats_ingest import NatsIngest
    from api.app import build_hub

    _log_to_stderr()
    if args.batch_size:
        settings = settings.model_copy(update={"nats_batch_size": args.batch_size})
    hub = build_hub(settings)

    async def main() -> dict[str, int]:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        consumer = NatsIngest(hub, settings)
        await consumer.start()
        watching = _serve_metrics(consumer, settings) if settings.ingest_metrics_port else None
        print(
            f"hub: ingesting {consumer.filter_subject} from stream {settings.nats_stream} "
            f"(consumer {consumer.durable}) at {settings.nats_url}",
            file=sys.stderr,
            flush=True,
        )
        stats = await consumer.run(stop)
        if watching is not None:
            watching.cancel()
        return stats.as_dict()

    try:
        stats = run_on_uvloop(main())
    finally:
        hub.close()
    print(f"hub: ingest stopped: {json.dumps(stats)}", file=sys.stderr)
    return 0


def _serve_metrics(consumer: Any, settings: Settings) -> asyncio.Task[None]:
    """Serve this process's metrics on loopback; the consumer's lag every 2 s.

    While messages flow the lag is the one the last fetched message carried; JetStream's
    consumer info is asked only after a quiet poll period. On nats-server 2.9 a consumer-info
    request slows the consumer's deliveries for seconds after it: polled every 2 s while busy,
    it cut ingestion by a tenth (9,350 to 8,350 messages/s in one run; once a second, by a
    third).
    """
    from prometheus_client import start_http_server

    from api.metrics import IngestMetrics

    metrics = IngestMetrics()
    consumer.on_batch = metrics.batch
    start_http_server(settings.ingest_metrics_port, addr="127.0.0.1", registry=metrics.registry)
    print(
        f"hub: ingest metrics on http://127.0.0.1:{settings.ingest_metrics_port}/metrics",
        file=sys.stderr,
    )

    async def poll() -> None:
        while True:
            if consumer.pending is not None and time.monotonic() - consumer.fetched_at < LAG_POLL_S:
                metrics.pending(consumer.pending)
            else:
                try:
                    metrics.consumer_info(await consumer.sub.consumer_info())
                except Exception as error:  # the broker away: keep the last figures, try again
                    logging.getLogger(__name__).warning("consumer info failed: %r", error)
            await asyncio.sleep(LAG_POLL_S)

    return asyncio.ensure_future(poll())


def publish(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.nats_publish import NatsPublisher
    from api.app import build_hub

    _log_to_stderr()
    hub = build_hub(settings)

    async def main() -> dict[str, int]:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        publisher = NatsPublisher(hub, settings)
        await publisher.start()
        print(
            f"hub: publishing events to {settings.nats_events_prefix}.<type> (stream "
            f"{settings.nats_events_stream}) from position {publisher.position + 1}",
            file=sys.stderr,
            flush=True,
        )
        stats = await publisher.run(stop)
        return dict(vars(stats))

    try:
        stats = run_on_uvloop(main())
    finally:
        hub.close()
    print(f"hub: publish stopped: {json.dumps(stats)}", file=sys.stderr)
    return 0


def register(commands: Any) -> None:
    ingest_cmd = commands.add_parser("ingest", help="consume touchpoints from a broker")
    sources = ingest_cmd.add_subparsers(dest="source", required=True)
    nats_in = sources.add_parser(
        "nats", help="record touchpoints published to touchpoints.<channel> (JetStream)"
    )
    nats_in.add_argument("--batch-size", type=int, help="messages per fetch and commit")
    nats_in.set_defaults(run=ingest)

    publish_cmd = commands.add_parser("publish", help="publish recorded events to a broker")
    targets = publish_cmd.add_subparsers(dest="target", required=True)
    nats_out = targets.add_parser(
        "nats", help="publish every recorded event to hub.events.<type> (JetStream), in order"
    )
    nats_out.set_defaults(run=publish)
