"""NATS ingestion benchmark: end to end (publish N → all committed) on PostgreSQL, beside plain
JetStream publish-and-consume of the same messages with no hub, in the same run.

    .venv/bin/python -m bench.nats_ingest [--quick] [-n N] [--batch 500] [--processes K]

Both phases start their consumer first, then publish every message with `publish_async`
(`Nats-Msg-Id` = the source key) while it consumes: the clock runs from the first publish to
the last ack. The plain phase fetches in batches and acks each message; the hub phase is
`hub ingest nats`'s consumer (`adapters/nats_ingest.py`): fetch a batch, parse, decide and
commit it in one transaction (`Hub.record_batch`, in a worker thread), then ack, dead-letter
the rejected ones to `touchpoints.rejected.<channel>`. The workload is `bench/ingest.py`'s mix
(orders, mails, calls, quotes, consent, marketing; a few contradictions and re-sends).
The database is a fresh PostgreSQL database, created and dropped; streams are unique per run.

Prints one table; the last line is one JSON object of every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import nats
import orjson
import psycopg
from nats.js.api import AckPolicy, ConsumerConfig, Header, StreamConfig

from adapters.nats_cli import run_on_uvloop
from adapters.nats_ingest import NatsIngest, partition_durable
from adapters.nats_streams import partition_key, partition_of
from bench._scratch import STORED_TOUCHPOINTS_SQL, ScratchDatabase
from bench.ingest import customer_touchpoints
from hub.app import Hub
from hub.settings import Settings

NATS_URL = os.environ.get("HUB_NATS_URL", "nats://127.0.0.1:4222")
TARGET = 10_000.0
STOPPED = "hub: ingest stopped:"  # the line `hub ingest nats` ends with, then its stats
SECOND_PHONES = 5_000_000  # the processes phase's workload: +49 30 5000000 and up


def customer_of(envelope: dict[str, Any]) -> str:
    """The workload's customer of an envelope (its number ends every source id): a key every
    channel would know if they shared one, such as a CRM id."""
    return "customer:" + str(envelope["source"]["id"]).rsplit("-", 1)[1]


def messages(
    run: str, n: int, window: int = 1000, seed: int = 7, phones_from: int = 1_000_000
) -> list[tuple[str, str, bytes]]:
    """(channel, source key, JSON) of about `n` envelopes; customers interleave in windows.
    A second workload into the same store needs phone numbers of its own (`phones_from`)."""
    rng = random.Random(seed)
    out: list[tuple[str, str, bytes]] = []
    i = 0
    while len(out) < n:
        group: list[list[dict[str, Any]]] = []
        size = 0
        while size < window:
            group.append(customer_touchpoints(rng, run, i, phones_from))
            size += len(group[-1])
            i += 1
        slots = [c for c, items in enumerate(group) for _ in items]
        rng.shuffle(slots)
        cursors = [0] * len(group)
        for c in slots:
            raw = group[c][cursors[c]]
            cursors[c] += 1
            channel = raw["source"]["channel"]
            out.append((channel, f"{channel}:{raw['source']['id']}", orjson.dumps(raw)))
    return out[:n]


async def publish(
    js: Any,
    prefix: str,
    msgs: list[tuple[str, str, bytes]],
    partitions: int | None = None,
    key: Callable[[dict[str, Any]], str] = partition_key,
) -> tuple[int, float]:
    """Publish pipelined, to `<prefix>.<channel>` or with `partitions` to
    `<prefix>.<channel>.<partition of key(envelope)>` (worked out before this function's
    clock starts: a channel knows its customer); (messages the stream stored, seconds until
    the last ack)."""
    subjects = [
        f"{prefix}.{channel}"
        + ("" if partitions is None else f".{partition_of(key(orjson.loads(data)), partitions)}")
        for channel, _, data in msgs
    ]
    started = time.perf_counter()
    futures = [
        await js.publish_async(subject, data, headers={Header.MSG_ID.value: key})
        for subject, (_, key, data) in zip(subjects, msgs, strict=True)
    ]
    acks = await asyncio.gather(*futures)
    return sum(not ack.duplicate for ack in acks), time.perf_counter() - started


async def plain(nc: Any, msgs: list[tuple[str, str, bytes]], batch: int) -> dict[str, Any]:
    """JetStream alone: the same messages published, fetched in batches and acked."""
    js = nc.jetstream()
    tag = uuid.uuid4().hex[:10]
    stream, prefix = f"BENCH_PLAIN_{tag}", f"bench{tag}.touchpoints"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{prefix}.*"], duplicate_window=120))
    try:
        sub = await js.pull_subscribe(
            f"{prefix}.*",
            durable=f"plain-{tag}",
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=batch * 8),
        )
        acked = 0
        stored: int | None = None

        async def consume() -> None:
            nonlocal acked
            while stored is None or acked < stored:
                try:
                    got = await sub.fetch(batch, timeout=1.0)
                except TimeoutError:
                    continue
                for msg in got:
                    await msg.ack()
                acked += len(got)
            await nc.flush()

        started = time.perf_counter()
        consuming = asyncio.ensure_future(consume())
        stored, published_s = await publish(js, prefix, msgs)
        await consuming
        took = time.perf_counter() - started
    finally:
        await js.delete_stream(stream)
    return {
        "messages": len(msgs),
        "stored": stored,
        "seconds": took,
        "per_s": stored / took,
        "publish_per_s": len(msgs) / published_s,
    }


async def through_hub(
    nc: Any, hub: Hub, msgs: list[tuple[str, str, bytes]], batch: int
) -> dict[str, Any]:
    """The hub's consumer: every stored message committed (or rejected) and acked."""
    js = nc.jetstream()
    tag = uuid.uuid4().hex[:10]
    settings = Settings(
        nats_url=NATS_URL,
        nats_stream=f"BENCH_HUB_{tag}",
        nats_subject_prefix=f"bench{tag}.touchpoints",
        nats_rejected_prefix=f"bench{tag}.touchpoints.rejected",
        nats_durable=f"hub-{tag}",
        nats_batch_size=batch,
    )
    ingest = NatsIngest(hub, settings)
    await ingest.start()
    try:
        stop = asyncio.Event()
        started = time.perf_counter()
        running = asyncio.ensure_future(ingest.run(stop))
        stored, published_s = await publish(js, settings.nats_subject_prefix, msgs)
        s = ingest.stats
        while s.recorded + s.duplicates + s.rejected < stored:
            await asyncio.sleep(0.005)
        took = time.perf_counter() - started
        stop.set()
        await running
    finally:
        await js.delete_stream(settings.nats_stream)
    return {
        "messages": len(msgs),
        "stored": stored,
        "seconds": took,
        "per_s": stored / took,
        "publish_per_s": len(msgs) / published_s,
        "recorded": s.recorded,
        "duplicates": s.duplicates,
        "rejected": s.rejected,
        "retried": s.retried,
        "batches": s.batches,
    }


def start_ingest_workers(
    names: dict[str, str], processes: int, partitioned: bool = False
) -> list[subprocess.Popen[str]]:
    """`processes` `hub ingest nats` workers with these HUB_* settings (and none of the
    caller's; `partitioned`: worker i takes partition i), returned once each says it is
    ingesting; stderr is theirs to read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | names
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "api.cli", "ingest", "nats"],
            env=env
            | (
                {"HUB_NATS_PARTITIONS": str(processes), "HUB_NATS_PARTITION": str(i)}
                if partitioned
                else {}
            ),
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    try:
        for worker in workers:
            assert worker.stderr is not None
            while "hub: ingesting" not in worker.stderr.readline():
                assert worker.poll() is None, "hub ingest nats exited"
    except BaseException:
        for worker in workers:
            worker.kill()
        raise
    return workers


def stop_ingest_workers(workers: list[subprocess.Popen[str]]) -> list[dict[str, int]]:
    """SIGTERM each worker and wait; the stats each printed on stopping."""
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    stats = []
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        lines = [line for line in err.splitlines() if STOPPED in line]
        if lines:
            stats.append(json.loads(lines[-1].split(STOPPED, 1)[1]))
    return stats


class Settled:
    """Counts the messages `hub ingest nats` workers have decided: each accepted one is a
    source key in the store (beyond those there at `start`), each rejected one a message on
    the rejected subject. `wait` returns once the counts reach what the stream stored and the
    consumer holds nothing unacked.

    Not by polling the consumer's info: on nats-server 2.9 a consumer-info request slows the
    consumer's deliveries for seconds after it (one a second cut the hub's ingestion from
    8,800 to 6,300 messages/s, measured in one process; one every 10 ms, as this bench did,
    cost a separate worker a third). It is asked when the counts say done, and when they
    stall (a re-send outside the duplicate window is acked as a duplicate and counted by
    neither), at most once per stall period.
    """

    def __init__(self, nc: Any, names: dict[str, str], partitions: int | None = None):
        """`partitions`: the workers each take one, with a consumer each; None: they share
        the consumer."""
        self.nc = nc
        self.names = names
        durable = names["HUB_NATS_DURABLE"]
        self.durables = [durable]
        if partitions:
            self.durables = [partition_durable(durable, p) for p in range(partitions)]
        self.rejected = 0
        self.keys_before = 0
        self.sub: Any = None

    async def _keys(self, conn: Any) -> int:
        cursor = await conn.execute(STORED_TOUCHPOINTS_SQL)
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def start(self) -> None:
        async def seen(_: Any) -> None:
            self.rejected += 1

        async with await psycopg.AsyncConnection.connect(self.names["HUB_DATABASE_URL"]) as conn:
            self.keys_before = await self._keys(conn)
        self.sub = await self.nc.subscribe(f"{self.names['HUB_NATS_REJECTED_PREFIX']}.>", cb=seen)

    async def _head(self, conn: Any) -> int:
        cursor = await conn.execute("SELECT max(notification_id) FROM hub_events")
        row = await cursor.fetchone()
        return int(row[0] or 0) if row else 0

    async def wait(self, stored: int, every: float = 0.05, stall: float = 1.0) -> None:
        """Until every message is decided. The log's head (one index probe) is read every
        `every` seconds and the decisions counted (a scan of the key rows: ~10 ms at 110,000
        of them, which every 50 ms took a fifth of a core from the workers) only once the head
        has stood still for two reads, or half a second has passed."""
        js = self.nc.jetstream()
        stream = self.names["HUB_NATS_STREAM"]
        last, changed, asked = -1, time.perf_counter(), 0.0
        head, counted, decided = -1, 0.0, 0
        async with await psycopg.AsyncConnection.connect(
            self.names["HUB_DATABASE_URL"], autocommit=True
        ) as conn:
            while True:
                moved, head = head, await self._head(conn)
                still = moved == head
                if still or time.perf_counter() - counted >= 0.5:  # below `stall`
                    counted = time.perf_counter()
                    decided = await self._keys(conn) - self.keys_before + self.rejected
                now = time.perf_counter()
                if decided != last:
                    last, changed = decided, now
                # Done by the counts: confirm (the last acks may still be on their way).
                # Stalled: look, but at most once a stall period.
                if decided >= stored:
                    due = now - asked >= 0.1
                else:
                    due = now - changed >= stall and now - asked >= stall
                if due:
                    asked = now
                    infos = [await js.consumer_info(stream, d) for d in self.durables]
                    if not any(i.num_pending or i.num_ack_pending for i in infos):
                        break
                await asyncio.sleep(every)
        await self.sub.unsubscribe()


async def through_processes(
    nc: Any,
    database_url: str,
    msgs: list[tuple[str, str, bytes]],
    batch: int,
    processes: int,
    partitioned: bool = False,
) -> dict[str, Any]:
    """`hub ingest nats` as separate processes sharing the durable consumer (how it scales),
    or (`partitioned`) each taking its partition, by one key per customer (`customer_of`)."""
    js = nc.jetstream()
    tag = uuid.uuid4().hex[:10]
    names = {
        "HUB_NATS_URL": NATS_URL,
        "HUB_NATS_STREAM": f"BENCH_PROC_{tag}",
        "HUB_NATS_SUBJECT_PREFIX": f"bench{tag}.touchpoints",
        "HUB_NATS_REJECTED_PREFIX": f"bench{tag}.touchpoints.rejected",
        "HUB_NATS_DURABLE": f"hub-{tag}",
        "HUB_NATS_BATCH_SIZE": str(batch),
        "HUB_DATABASE_URL": database_url,
        "HUB_POOL_SIZE": "4",
    }
    workers = start_ingest_workers(names, processes, partitioned)
    settled = Settled(nc, names, processes if partitioned else None)
    try:
        await settled.start()
        started = time.perf_counter()
        partitions = processes if partitioned else None
        prefix = names["HUB_NATS_SUBJECT_PREFIX"]
        stored, published_s = await publish(js, prefix, msgs, partitions, customer_of)
        await settled.wait(stored)
        took = time.perf_counter() - started
    finally:
        stats = stop_ingest_workers(workers)
        await js.delete_stream(names["HUB_NATS_STREAM"])
    return {
        "processes": processes,
        "partitioned": partitioned,
        "stored": stored,
        "seconds": took,
        "per_s": stored / took,
        "publish_per_s": len(msgs) / published_s,
        **{k: sum(s[k] for s in stats) for k in ("recorded", "duplicates", "rejected")},
    }


async def run(n: int, batch: int, processes: int, partitioned: bool = False) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    msgs = messages(run_id, n)
    database = ScratchDatabase("hub_bench_nats")
    hub = Hub(Settings(database_url=database.url, pool_size=4).eventsourcing_env())
    nc = await nats.connect(NATS_URL)
    scaled = None
    try:
        baseline = await plain(nc, msgs, batch)
        hubbed = await through_hub(nc, hub, msgs, batch)
        if processes:
            # The same touchpoints again would all be duplicates: a second workload, of
            # customers of their own (same mix, other phone numbers).
            again = messages(run_id + "p", n, phones_from=SECOND_PHONES)
            scaled = await through_processes(nc, database.url, again, batch, processes, partitioned)
    finally:
        await nc.close()
        hub.close()
        database.close()
    return {
        "n": n,
        "batch": batch,
        "store": "postgres",
        "plain_jetstream": baseline,
        "hub": hubbed,
        "ratio": hubbed["per_s"] / baseline["per_s"],
        "processes": scaled,
        "target_per_s": TARGET,
        "meets_target": hubbed["per_s"] >= TARGET,
        "processes_meet_target": bool(scaled and scaled["per_s"] >= TARGET),
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"NATS ingestion, {result['n']} messages, fetch batch {result['batch']}, PostgreSQL")
    print(f"{'phase':<26}{'stored':>8}{'seconds':>9}{'msgs/s':>10}{'publish/s':>11}")
    rows = [("plain JetStream", result["plain_jetstream"]), ("through the hub", result["hub"])]
    p = result["processes"]
    if p:
        name = f"{p['processes']} process{'es' if p['processes'] > 1 else ''}"
        rows.append((name + (", partitioned" if p["partitioned"] else ""), p))
    for name, row in rows:
        print(
            f"{name:<26}{row['stored']:>8}{row['seconds']:>9.2f}"
            f"{row['per_s']:>10,.0f}{row['publish_per_s']:>11,.0f}"
        )
    h = result["hub"]
    print(
        f"hub: {h['recorded']} recorded, {h['duplicates']} duplicates, {h['rejected']} "
        f"rejected, {h['retried']} retried, {h['batches']} batches"
    )
    if p:
        print(
            f"{rows[-1][0]}: {p['recorded']} recorded, {p['duplicates']} duplicates, "
            f"{p['rejected']} rejected"
        )
    verdict = "meets" if result["meets_target"] else "misses"
    print(
        f"hub / plain = {result['ratio']:.2f}; {h['per_s']:,.0f} touchpoints/s {verdict} "
        f"the target of {TARGET:,.0f}/s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 messages")
    parser.add_argument("-n", type=int, help="messages (default 50,000; --quick 5,000)")
    parser.add_argument("--batch", type=int, default=500, help="fetch and commit batch")
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also run `hub ingest nats` as this many processes sharing the consumer, on a "
        "second workload, 1 to time the deployed form alone (default 0: skip)",
    )
    parser.add_argument(
        "--partitioned",
        action="store_true",
        help="the processes each take a partition (HUB_NATS_PARTITION), the messages published "
        "to touchpoints.<channel>.<p> by one key per customer, instead of sharing the consumer",
    )
    args = parser.parse_args(argv)
    n = args.n or (5_000 if args.quick else 50_000)
    # On uvloop, as `hub ingest nats` runs, for both phases.
    result = run_on_uvloop(run(n, args.batch, args.processes, args.partitioned))
    print_table(result)
    rounded = json.loads(json.dumps(result), parse_float=lambda x: round(float(x), 3))
    print(json.dumps(rounded), file=sys.stdout)


if __name__ == "__main__":
    main()
