"""Soak: steady HTTP load at a fixed rate against a real `hub serve` for many minutes, to see
whether latency and memory stay flat.

    .venv/bin/python -m bench.soak --minutes 10        # the issue's soak, on PostgreSQL
    .venv/bin/python -m bench.soak --quick             # 1 minute
    .venv/bin/python -m bench.soak --rate 200 --read-share 0.3 --store sqlite
    .venv/bin/python -m bench.soak --probe 40000       # memory only: closed loop, any machine

Open loop: requests are sent on a fixed schedule whether or not earlier ones answered
(a slow hub cannot slow the load down), and each latency is measured from the moment the
request was due, so queueing inside the client counts against the hub. The mix: new
touchpoints (calls, emails, orders and quotes, for 2,000 customers; a few re-sent, so
answered 200) and reads (a customer's profile, timeline, open items, and a look-up by
email). Each minute: requests, errors, p50/p99 of writes and reads, the hub's RSS (VmRSS of
the `hub serve` process, from /proc) and how full its caches are (weight over bound, from its
/metrics: the aggregate cache, then the profile view's). Memory is judged flat or not from the
minute the caches were all full: warming a bounded cache is growth that stops. Last line: one
JSON object.

`--probe N` asks about memory alone: the same mix sent in a closed loop (8 clients, each
waiting for its answer), RSS after every 5,000 requests. Its figures do not depend on how
busy the machine is, so it can show growth (or its absence) where a timed soak cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.http import drop_store, free_port, fresh_store, start_serve

CUSTOMERS = 2_000
JSON = {"content-type": "application/json"}


def session(url: str, connections: int, timeout: float = 30) -> aiohttp.ClientSession:
    """The load's HTTP client. aiohttp, not httpx: on this machine httpx spends about 3 ms of
    CPU per request (7 ms with many requests pending), aiohttp about 0.4 ms, and the client
    shares the hub's two cores, so a heavy client would measure itself."""
    return aiohttp.ClientSession(
        url,
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """The process's resident memory in MB (`VmHWM`: its peak) from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Minute:
    writes: list[float] = field(default_factory=list)
    reads: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    caches: dict[str, float] = field(default_factory=dict)  # cache → share of its bound held


async def caches_full(client: aiohttp.ClientSession) -> dict[str, float]:
    """How full each of the hub's caches is (weight over its bound), from its /metrics."""
    async with client.get("/metrics") as response:
        text = await response.text()
    figures: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name in ("hub_cache_weight", "hub_cache_weight_limit"):
            for sample in family.samples:
                figures.setdefault(sample.labels["cache"], {})[family.name] = sample.value
    return {
        cache: round(f["hub_cache_weight"] / f["hub_cache_weight_limit"], 3)
        for cache, f in figures.items()
        if f.get("hub_cache_weight_limit")
    }


def touchpoint(index: int, rng: random.Random) -> dict[str, Any]:
    customer = rng.randrange(CUSTOMERS)
    kind = rng.random()
    doc: dict[str, Any] = {
        "source": {"channel": "phone", "id": f"soak-{index}"},
        "type": "call.inbound",
        "occurred_at": "2026-11-03T09:30:00Z",
        "customer": {"email": f"c{customer}@soak.example.com"},
        "actor": {"kind": "agent", "id": f"agent-{customer % 20}"},
        "data": {"summary": "soak", "duration_s": 60},
    }
    if kind < 0.2:
        doc.update(
            type="email.received",
            source={"channel": "email", "id": f"<soak-{index}@example.net>"},
            data={"subject": "Where is my order?"},
        )
    elif kind < 0.35:
        doc.update(
            type="order.placed",
            source={"channel": "web", "id": f"order-soak-{index}"},
            data={"order_id": f"S-{index}", "total": {"amount": "19.90", "currency": "EUR"}},
        )
    elif kind < 0.45:
        doc.update(
            type="quote.given",
            source={"channel": "sales", "id": f"quote-soak-{index}"},
            data={
                "sku": f"SKU-{rng.randrange(5)}",
                "price": {"amount": rng.choice(["10.00", "12.00"]), "currency": "EUR"},
                "valid_until": "2026-12-31T00:00:00Z",
            },
        )
    return doc


class Load:
    """The schedule and what it measured, minute by minute."""

    def __init__(self, url: str, rate: float, read_share: float, seed: int):
        self.url = url
        self.rate = rate
        self.read_share = read_share
        self.rng = random.Random(seed)
        self.known: list[tuple[str, str]] = []  # (customer id, email) seen in answers
        self.minutes: list[Minute] = []
        self.sent: list[dict[str, Any]] = []

    async def run(self, minutes: int, pid: int, on_minute: Any) -> list[float]:
        rss = []
        async with session(self.url, connections=64) as client:
            start = time.monotonic()
            pending: set[asyncio.Task[None]] = set()
            index = 0
            for minute in range(minutes):
                self.minutes.append(Minute())
                end = start + 60 * (minute + 1)
                while (due := start + index / self.rate) < end:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    task = asyncio.create_task(self._one(client, index, due, minute))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    index += 1
                await asyncio.sleep(max(0.0, end - time.monotonic()))
                rss.append(rss_mb(pid))
                self.minutes[minute].caches = await caches_full(client)
                on_minute(minute, self.minutes[minute], rss[-1])
            await asyncio.gather(*pending)
        return rss

    async def _one(
        self, client: aiohttp.ClientSession, index: int, due: float, minute: int
    ) -> None:
        bucket = self.minutes[minute]
        reading = self.known and self.rng.random() < self.read_share
        try:
            if reading:
                customer_id, email = self.rng.choice(self.known)
                path = self.rng.choice(
                    [
                        f"/v1/customers/{customer_id}",
                        f"/v1/customers/{customer_id}/timeline?limit=20",
                        f"/v1/customers/{customer_id}/open-items",
                        f"/v1/customers?email={email}",
                    ]
                )
                async with client.get(path) as response:
                    await response.read()
            else:
                if self.sent and self.rng.random() < 0.02:
                    doc = self.rng.choice(self.sent)  # a re-sent touchpoint: 200 duplicate
                else:
                    doc = touchpoint(index, self.rng)
                    if len(self.sent) < 5000:
                        self.sent.append(doc)
                async with client.post(
                    "/v1/touchpoints", data=orjson.dumps(doc), headers=JSON
                ) as response:
                    body = await response.read()
                if response.status == 201 and len(self.known) < CUSTOMERS:
                    self.known.append((orjson.loads(body)["customer_id"], doc["customer"]["email"]))
        except (TimeoutError, aiohttp.ClientError):
            bucket.errors += 1
            return
        elapsed_ms = (time.monotonic() - due) * 1000
        (bucket.reads if reading else bucket.writes).append(elapsed_ms)
        bucket.statuses[response.status] = bucket.statuses.get(response.status, 0) + 1
        if response.status >= 500:
            bucket.errors += 1


PROBE_STEP = 5_000


async def probe(load: Load, requests: int, pid: int) -> list[float]:
    """Send `requests` of the mix with 8 clients in a closed loop; RSS after each step."""
    rss: list[float] = []
    async with session(load.url, connections=16, timeout=60) as client:
        sent = 0

        async def client_loop(step: int, end: int) -> None:
            nonlocal sent
            while sent < end:
                index, sent = sent, sent + 1
                await load._one(client, index, time.monotonic(), step)

        for step in range(max(1, requests // PROBE_STEP)):
            load.minutes.append(Minute())
            started = time.monotonic()
            end = (step + 1) * PROBE_STEP
            await asyncio.gather(*(client_loop(step, end) for _ in range(8)))
            await asyncio.sleep(2)  # the projections catch up before memory is read
            rss.append(rss_mb(pid))
            bucket = load.minutes[step]
            print(
                f"{end:>9}{PROBE_STEP / (time.monotonic() - started):>8.0f}/s"
                f"{bucket.errors:>8}{rss[-1]:>9.1f}",
                flush=True,
            )
    return rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="one minute")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--read-share", type=float, default=0.3)
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--probe", type=int, metavar="N", help="memory only: N requests in a closed loop"
    )
    args = parser.parse_args(argv)
    minutes = 1 if args.quick else args.minutes

    folder = Path(tempfile.mkdtemp(prefix="hub-soak-"))
    url = fresh_store(args.store, folder)
    port = free_port()
    # HUB_* settings of the caller's environment (cache bounds, say) reach the hub.
    settings = {k: v for k, v in os.environ.items() if k.startswith("HUB_")}
    settings.pop("HUB_DATABASE_URL", None)
    proc = start_serve(url, port, folder / "serve.log", **settings)
    if args.probe:
        return run_probe(args, url, port, proc)
    print(
        f"soak: {args.rate:.0f} requests/s ({args.read_share:.0%} reads) for {minutes} min "
        f"against hub serve on {args.store}"
    )
    header = (
        f"{'minute':>6}{'requests':>10}{'errors':>8}{'write p50':>11}{'write p99':>11}"
        f"{'read p50':>10}{'read p99':>10}{'RSS MB':>9}{'caches full':>13}"
    )
    print(header)
    rows: list[dict[str, Any]] = []

    def on_minute(minute: int, bucket: Minute, rss: float) -> None:
        row = {
            "minute": minute + 1,
            "requests": len(bucket.writes) + len(bucket.reads) + bucket.errors,
            "errors": bucket.errors,
            "write_p50_ms": round(percentile(bucket.writes, 0.5), 2),
            "write_p99_ms": round(percentile(bucket.writes, 0.99), 2),
            "read_p50_ms": round(percentile(bucket.reads, 0.5), 2),
            "read_p99_ms": round(percentile(bucket.reads, 0.99), 2),
            "rss_mb": round(rss, 1),
            "caches_full": bucket.caches,
            "statuses": {str(k): v for k, v in sorted(bucket.statuses.items())},
        }
        rows.append(row)
        print(
            f"{row['minute']:>6}{row['requests']:>10}{row['errors']:>8}"
            f"{row['write_p50_ms']:>11.2f}{row['write_p99_ms']:>11.2f}"
            f"{row['read_p50_ms']:>10.2f}{row['read_p99_ms']:>10.2f}{row['rss_mb']:>9.1f}"
            f"{'  ' + ' '.join(f'{v:.0%}' for v in bucket.caches.values()):>13}",
            flush=True,
        )

    try:
        load = Load(f"http://127.0.0.1:{port}", args.rate, args.read_share, args.seed)
        asyncio.run(load.run(minutes, proc.pid, on_minute))
    finally:
        proc.terminate()
        proc.wait(30)
        drop_store(url)
    # Flatness: the last minute against the first (memory from the end of minute one, once
    # imports, pools and caches are warm).
    first, last = rows[0], rows[-1]
    figures = {
        "rate_per_s": args.rate,
        "read_share": args.read_share,
        "minutes": minutes,
        "store": args.store,
        "per_minute": rows,
        "write_p99_last_over_first": round(
            last["write_p99_ms"] / max(first["write_p99_ms"], 1e-9), 2
        ),
        "read_p99_last_over_first": round(last["read_p99_ms"] / max(first["read_p99_ms"], 1e-9), 2),
        "rss_growth_mb_per_min": round(
            (last["rss_mb"] - first["rss_mb"]) / max(len(rows) - 1, 1), 2
        ),
        "errors": sum(r["errors"] for r in rows),
    }
    # Memory once every cache holds all it may: warming bounded caches is growth that stops,
    # so flatness is judged from the first minute they were all full.
    full = next(
        (r for r in rows if r["caches_full"] and min(r["caches_full"].values()) >= 0.99), None
    )
    if full is not None and full is not last:
        figures["caches_full_from_minute"] = full["minute"]
        figures["rss_growth_mb_per_min_once_full"] = round(
            (last["rss_mb"] - full["rss_mb"]) / (last["minute"] - full["minute"]), 2
        )
    print(
        f"write p99 last/first {figures['write_p99_last_over_first']}, read p99 last/first "
        f"{figures['read_p99_last_over_first']}, RSS {figures['rss_growth_mb_per_min']:+} MB/min"
        + (
            f" ({figures['rss_growth_mb_per_min_once_full']:+} MB/min from minute "
            f"{full['minute']}, when the caches were full)"
            if "caches_full_from_minute" in figures and full is not None
            else ""
        )
    )
    print(orjson.dumps(figures).decode())
    return 0


def run_probe(args: argparse.Namespace, url: str, port: int, proc: Any) -> int:
    print(
        f"memory probe: {args.probe} requests ({args.read_share:.0%} reads), 8 clients, closed loop"
    )
    print(f"{'requests':>9}{'rate':>10}{'errors':>8}{'RSS MB':>9}")
    try:
        load = Load(f"http://127.0.0.1:{port}", 1.0, args.read_share, args.seed)
        rss = asyncio.run(probe(load, args.probe, proc.pid))
    finally:
        proc.terminate()
        proc.wait(30)
        drop_store(url)
    half = len(rss) // 2
    figures = {
        "probe_requests": args.probe,
        "store": args.store,
        "rss_mb": [round(r, 1) for r in rss],
        # growth over the second half, once the caches had the first half to fill
        "rss_growth_mb_per_10k_second_half": round(
            (rss[-1] - rss[half]) / max((len(rss) - 1 - half) * PROBE_STEP / 10_000, 1e-9), 2
        )
        if len(rss) > 2
        else None,
        "errors": sum(m.errors for m in load.minutes),
    }
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
