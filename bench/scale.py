"""Scale check: one `hub ingest nats` process against two, on one PostgreSQL server, with the
same messages in the same run: throughput of each and the ratio.

    .venv/bin/python -m bench.scale [--quick] [-n 10000] [--batch 500] [--processes 1,2,2,1]
                                    [--modes shared,partitioned,by-customer]

Each phase gets a fresh database (tables created before the workers start) and its own
stream; the workers start, then every message is published pipelined (`Nats-Msg-Id` =
source key) and the clock stops when the consumers have nothing pending or unacknowledged.
Three modes, alternating phase by phase: `shared`, the workers share one durable consumer of
`<prefix>.<channel>`; `partitioned`, each message goes to `<prefix>.<channel>.<p>` with p
from the first identity its customer reference gives (`adapters.nats_streams.partition_key`)
modulo the workers, and worker i takes partition i (`HUB_NATS_PARTITION`); `by-customer`,
the same keyed by the workload's customer number, as if every channel knew one key per
customer (a CRM id): in the mix some touchpoints give only a phone number or an account, so
by identity a customer's touchpoints can fall in two partitions. The workload is
`bench/ingest.py`'s mix (orders, mails, calls, quotes, consent, marketing; contradictions and
re-sends), customers interleaved over windows
of 1,000 messages, so two workers often hold batches touching the same customers and one of
them decides again (the `retried` column). After each phase the store is counted: every
message must be decided once and every acceptance stored once. With several workers a
customer's messages can be decided out of publish order (shared: always; partitioned: a
touchpoint keyed by another identity than the rest of its customer's, such as a call knowing
only the phone number), so rules that depend on order (a claim before the fact that backs it)
may refuse a few more: `extra_rejected`.

Prints one table; the last line is one JSON object of every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from typing import Any

import nats
import psycopg

from adapters.nats_streams import partition_key
from bench._scratch import STORED_TOUCHPOINTS_SQL, ScratchDatabase
from bench.nats_ingest import (
    NATS_URL,
    Settled,
    customer_of,
    messages,
    publish,
    start_ingest_workers,
    stop_ingest_workers,
)
from hub.app import Hub
from hub.settings import Settings

MODES = ("shared", "partitioned", "by-customer")


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine so far (Linux /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def process_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes have used so far (Linux /proc/PID/stat)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def stored_counts(database_url: str) -> tuple[int, int]:
    """(events in the log, source keys recorded: rows pointing at an event) of a database."""
    with psycopg.connect(database_url) as conn:
        events = conn.execute("SELECT count(*) FROM hub_events").fetchone()
        keys = conn.execute(STORED_TOUCHPOINTS_SQL).fetchone()
    return int(events[0] if events else 0), int(keys[0] if keys else 0)


async def phase(
    msgs: list[tuple[str, str, bytes]], batch: int, processes: int, mode: str = "shared"
) -> dict[str, Any]:
    """`processes` workers on a fresh database and stream; the figures of the phase.
    `partitioned`: messages go to `<prefix>.<channel>.<partition>` by their customer's first
    identity (`partition_key`) and worker i takes partition i, instead of all of them sharing
    one consumer; `by-customer`: the same, keyed by the workload's customer number (as if
    every channel knew one customer key, a CRM id)."""
    partitioned = mode != "shared"
    database = ScratchDatabase("hub_bench_scale")
    Hub(Settings(database_url=database.url, pool_size=1).eventsourcing_env()).close()
    tag = uuid.uuid4().hex[:10]
    names = {
        "HUB_NATS_URL": NATS_URL,
        "HUB_NATS_STREAM": f"BENCH_SCALE_{tag}",
        "HUB_NATS_SUBJECT_PREFIX": f"scale{tag}.touchpoints",
        "HUB_NATS_REJECTED_PREFIX": f"scale{tag}.touchpoints.rejected",
        "HUB_NATS_DURABLE": f"hub-{tag}",
        "HUB_NATS_BATCH_SIZE": str(batch),
        "HUB_DATABASE_URL": database.url,
        "HUB_POOL_SIZE": "4",
    }
    workers = start_ingest_workers(names, processes, partitioned)
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    settled = Settled(nc, names, processes if partitioned else None)
    try:
        await settled.start()
        load = os.getloadavg()[0]
        busy0, total0 = cpu_ticks()
        cpu0 = process_cpu_s([w.pid for w in workers])
        started = time.perf_counter()
        partitions = processes if partitioned else None
        key = customer_of if mode == "by-customer" else partition_key
        published, _ = await publish(js, names["HUB_NATS_SUBJECT_PREFIX"], msgs, partitions, key)
        await settled.wait(published)
        took = time.perf_counter() - started
        busy1, total1 = cpu_ticks()
        workers_cpu_s = process_cpu_s([w.pid for w in workers]) - cpu0
    finally:
        stats = stop_ingest_workers(workers)
        await js.delete_stream(names["HUB_NATS_STREAM"])
        await nc.close()
    try:
        events, keys = stored_counts(database.url)
    finally:
        database.close()
    total = {k: sum(s[k] for s in stats) for k in ("recorded", "duplicates", "rejected")}
    return {
        "processes": processes,
        "mode": mode,
        "messages": published,
        "seconds": took,
        "per_s": published / took,
        **total,
        "retried": sum(s["retried"] for s in stats),
        "batches_per_worker": [s["batches"] for s in stats],
        "stored_events": events,
        "stored_touchpoints": keys,
        # How busy the machine (every process on it) was while the phase ran: near 1 means
        # there was no idle core left for another worker to use.
        "load_avg_1m": load,
        "machine_busy": (busy1 - busy0) / max(1, total1 - total0),
        "workers_cpu_ms_per_msg": 1000 * workers_cpu_s / max(1, published),
    }


async def run(
    n: int, batch: int, counts: list[int], modes: tuple[str, ...] = MODES
) -> dict[str, Any]:
    """Each count's phase in each mode, the modes alternating (a drift of the machine's speed
    falls on every mode alike); each mode's figures against its own first count."""
    msgs = messages(uuid.uuid4().hex[:6], n)
    phases = [await phase(msgs, batch, k, mode) for k in counts for mode in modes]
    result: dict[str, Any] = {
        "bench": "scale",
        "n": n,
        "batch": batch,
        "store": "postgres",
        "cores": os.cpu_count(),
        "phases": phases,
        # Nothing lost, nothing twice: every message decided once, every acceptance stored once.
        "all_decided_once": all(
            p["recorded"] + p["rejected"] + p["duplicates"] == p["messages"]
            and p["stored_touchpoints"] == p["recorded"]
            for p in phases
        ),
    }
    for mode in modes:
        result[mode] = _summary([p for p in phases if p["mode"] == mode])
    result.update(result[modes[0]])  # the first mode's figures at the top, as before
    return result


def _summary(phases: list[dict[str, Any]]) -> dict[str, Any]:
    base = phases[0]
    for p in phases:
        p["ratio"] = p["per_s"] / base["per_s"]
    counts = [p["processes"] for p in phases]
    # Repeated counts (1,2,2,1 cancels a drift of the machine's load): the median of each.
    by_count = {
        k: statistics.median(p["per_s"] for p in phases if p["processes"] == k)
        for k in dict.fromkeys(counts)
    }
    rejected = {
        k: statistics.median(p["rejected"] for p in phases if p["processes"] == k) for k in by_count
    }
    first = counts[0]
    return {
        "per_s": {f"{k}_workers": v for k, v in by_count.items()},
        "ratios": {
            f"{k}_vs_{first}": v / by_count[first] for k, v in by_count.items() if k != first
        },
        # Workers sharing a consumer decide a customer's messages out of publish order, so
        # order-dependent rules (claim-vs-fact) refuse more (dead-lettered); partitioned, a
        # customer's messages keyed alike are decided in order by one worker.
        "extra_rejected": {
            f"{k}_vs_{first}": v - rejected[first] for k, v in rejected.items() if k != first
        },
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"Scale check: {result['n']} NATS messages, batch {result['batch']}, one PostgreSQL")
    print(
        f"{'workers':>8}{'mode':>12}{'seconds':>9}{'msgs/s':>9}{'ratio':>7}{'recorded':>10}"
        f"{'rejected':>10}{'retried':>9}{'stored':>8}{'busy':>6}{'cpu ms/msg':>11}"
    )
    for p in result["phases"]:
        print(
            f"{p['processes']:>8}{p['mode']:>12}{p['seconds']:>9.2f}{p['per_s']:>9,.0f}"
            f"{p['ratio']:>7.2f}{p['recorded']:>10}{p['rejected']:>10}{p['retried']:>9}"
            f"{p['stored_touchpoints']:>8}{p['machine_busy']:>6.0%}"
            f"{p['workers_cpu_ms_per_msg']:>11.2f}"
        )
    verdict = "once" if result["all_decided_once"] else "NOT once (a message lost or doubled)"
    print(f"every message decided and every acceptance stored {verdict}")
    for mode, how in (
        ("shared", "the workers share one consumer: decided out of publish order"),
        ("partitioned", "each worker takes a partition, by the customer's first identity"),
        ("by-customer", "each worker takes a partition, by one key per customer"),
    ):
        for name, ratio in result.get(mode, {}).get("ratios", {}).items():
            extra = result[mode]["extra_rejected"][name]
            print(
                f"{mode}: workers {name.replace('_', ' ')}: throughput x{ratio:.2f} (medians); "
                f"{extra:+.0f} rejected ({how})"
            )
    load = ", ".join(f"{p['load_avg_1m']:.1f}" for p in result["phases"])
    print(
        f"{result['cores']} cores shared with everything else; load average at each phase: {load}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 messages")
    parser.add_argument("-n", type=int, help="messages per phase (default 10,000)")
    parser.add_argument("--batch", type=int, default=500, help="fetch and commit batch")
    parser.add_argument(
        "--processes", help="worker counts, one phase each (default 1,2,2,1; --quick 1,2)"
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help="any of shared (the workers share one consumer), partitioned (worker i takes "
        "partition i, by each touchpoint's first identity) and by-customer (the same, by one "
        "key per customer); all three by default, alternating",
    )
    args = parser.parse_args(argv)
    n = args.n or (3_000 if args.quick else 10_000)
    counts = [int(k) for k in (args.processes or ("1,2" if args.quick else "1,2,2,1")).split(",")]
    modes = tuple(m.strip() for m in args.modes.split(","))
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        parser.error(f"--modes: any of {', '.join(MODES)}")
    result = asyncio.run(run(n, args.batch, counts, modes))
    print_table(result)
    rounded = json.loads(json.dumps(result), parse_float=lambda x: round(float(x), 3))
    print(json.dumps(rounded))


if __name__ == "__main__":
    main()
