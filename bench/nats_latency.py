"""NATS ingestion latency on a quiet channel: from a touchpoint's publish to its decision.

    .venv/bin/python -m bench.nats_latency            # 20 touchpoints, one every 0.3 s
    .venv/bin/python -m bench.nats_latency --quick    # 8

`hub ingest nats`'s consumer (`NatsIngest`, in this process, on a fresh PostgreSQL database
and a stream of its own) idles; one touchpoint at a time is published and the clock stops
when the consumer has decided it (recorded or rejected, and settled). The workload is
`bench/nats_ingest.py`'s mix. Prints the median and the worst; the last line is one JSON
object of every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from typing import Any

import nats
from nats.js.api import Header

from adapters.nats_cli import run_on_uvloop
from adapters.nats_ingest import NatsIngest
from api.app import build_hub
from bench._scratch import ScratchDatabase
from bench.nats_ingest import NATS_URL, messages
from hub.settings import Settings


async def run(count: int, gap: float) -> dict[str, Any]:
    database = ScratchDatabase("hub_bench_latency")
    tag = uuid.uuid4().hex[:10]
    settings = Settings(
        database_url=database.url,
        pool_size=2,
        nats_url=NATS_URL,
        nats_stream=f"BENCH_LAT_{tag}",
        nats_subject_prefix=f"lat{tag}.touchpoints",
        nats_rejected_prefix=f"lat{tag}.touchpoints.rejected",
        nats_durable=f"hub-{tag}",
    )
    hub = build_hub(settings)
    nc = await nats.connect(NATS_URL)
    ingest = NatsIngest(hub, settings)
    await ingest.start()
    stop = asyncio.Event()
    running = asyncio.ensure_future(ingest.run(stop))
    s = ingest.stats
    took: list[float] = []
    try:
        js = nc.jetstream()
        await asyncio.sleep(1.0)  # the consumer idle, its fetch lingering
        for channel, key, data in messages(uuid.uuid4().hex[:6], count):
            before = s.recorded + s.rejected + s.duplicates
            started = time.perf_counter()
            await js.publish(
                f"{settings.nats_subject_prefix}.{channel}",
                data,
                headers={Header.MSG_ID.value: key},
            )
            while s.recorded + s.rejected + s.duplicates == before:
                await asyncio.sleep(0.001)
            took.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(gap)
    finally:
        stop.set()
        await running
        await nc.jetstream().delete_stream(settings.nats_stream)
        await nc.close()
        hub.close()
        database.close()
    return {
        "bench": "nats_latency",
        "touchpoints": count,
        "gap_s": gap,
        "median_ms": statistics.median(took),
        "max_ms": max(took),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 touchpoints")
    parser.add_argument("-n", type=int, help="touchpoints (default 20; --quick 8)")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between touchpoints")
    args = parser.parse_args(argv)
    result = run_on_uvloop(run(args.n or (8 if args.quick else 20), args.gap))
    print(
        f"quiet-channel NATS latency, {result['touchpoints']} touchpoints one every "
        f"{result['gap_s']} s: median {result['median_ms']:.1f} ms, worst {result['max_ms']:.1f} ms"
    )
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
