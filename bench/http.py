"""Single-touchpoint HTTP throughput and latency: 32 concurrent clients posting one touchpoint
per request to a real `hub serve`, with group commit and the aggregate cache, and without
either (the naive path: one transaction per touchpoint, every customer read from the store);
on PostgreSQL the group commit also with `hub serve --workers 2` (two server processes on one
port), as `--workers` says.

    .venv/bin/python -m bench.http [--quick] [--store postgres|sqlite] [--clients 32]
        [--workers 1,2]

Needs `wrk` (Debian: apt install wrk) as the load generator: a C client leaves the two
cores to the server and the store. Each request is a new touchpoint (unique source key)
for one of 5,000 customers. Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from bench._scratch import STORED_TOUCHPOINTS_SQL, create_database, drop_database

LUA = r"""
-- `tid` is a global each thread gets from setup (a `local tid` would hide it: every thread
-- then posted the same keys); `run` (the first script argument) makes keys unique per run.
local counter = 0
local run = "run"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  run = args[1] or run
end
request = function()
  counter = counter + 1
  local key = string.format("%s-%d-%d", run, tid, counter)
  local customer = (tid * 2503 + counter) % 5000
  local body = string.format(
    '{"source":{"channel":"phone","id":"call-%s"},"type":"call.inbound",' ..
    '"occurred_at":"2026-11-03T09:30:00Z","customer":{"email":"c%d@bench.example.com"},' ..
    '"actor":{"kind":"agent","id":"agent-1"},"data":{"summary":"bench","duration_s":60}}',
    key, customer)
  return wrk.format("POST", "/v1/touchpoints", {["Content-Type"]="application/json"}, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_store(store: str, folder: Path) -> str:
    if store == "sqlite":
        return f"sqlite:///{folder / 'bench-http.db'}"
    return create_database("hub_bench_http")


def drop_store(url: str) -> None:
    if url.startswith("postgresql://"):
        drop_database(url)


def start_serve(
    url: str, port: int, log: Path | None = None, **settings: str
) -> subprocess.Popen[bytes]:
    """`hub serve` on the store `url` with these HUB_* settings (nothing else of the caller's
    environment's), returned once its /healthz answers; its output goes to `log` if given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATABASE_URL=url, **settings)
    cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--log-level", "warning"]
    out = log.open("wb") if log is not None else None
    process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("hub serve did not start" + (f":\n{log.read_text()}" if log else ""))


def seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(port: int, clients: int, duration: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{duration}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}", "--", uuid.uuid4().hex[:12]],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": seconds(latency["50"]) * 1000,
        "p99_ms": seconds(latency["99"]) * 1000,
        "errors": float(errors.group(1)) if errors else 0.0,
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
    }


def stored_touchpoints(url: str) -> int:
    """Touchpoints in the store: source keys pointing at an event."""
    query = STORED_TOUCHPOINTS_SQL
    if url.startswith("postgresql://"):
        with psycopg.connect(url) as conn:
            row = conn.execute(query).fetchone()
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            row = db.execute(query).fetchone()
    return int(row[0]) if row else 0


def measure(
    store: str, clients: int, duration: int, group_commit: bool, workers: int = 1
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        url = fresh_store(store, Path(folder))
        script = Path(folder) / "post.lua"
        script.write_text(LUA)
        port = free_port()
        process = start_serve(
            url,
            port,
            HUB_RUN_PROJECTIONS="false",  # projections run in their own processes in production
            HUB_GROUP_COMMIT="true" if group_commit else "false",
            # The naive path is the one before this work: no group commit and no cache.
            HUB_AGGREGATE_CACHE_SIZE="10000" if group_commit else "0",
            HUB_POOL_SIZE="40",
            HUB_API_WORKERS=str(workers),
        )
        try:
            warm = run_wrk(port, clients, 2, script)  # warm up: customers, keys, connections
            result = run_wrk(port, clients, duration, script)
            # Every request is a new touchpoint (none a duplicate): each answered one was stored,
            # and some still in flight at the end (up to `clients` a run) were too.
            result["stored"] = stored_touchpoints(url)
            result["answered"] = warm["requests"] + result["requests"]
            return result
        finally:
            process.terminate()
            process.wait(30)
            drop_store(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="5-second runs")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="server processes the group commit is measured with, comma-separated (SQLite: 1)",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("bench.http needs wrk: apt install wrk")
    duration = 5 if args.quick else args.duration
    counts = [int(n) for n in args.workers.split(",")] if args.store == "postgres" else [1]
    runs = {n: measure(args.store, args.clients, duration, True, n) for n in counts}
    grouped = runs[counts[0]]
    naive = measure(args.store, args.clients, duration, group_commit=False)
    figures: dict[str, Any] = {
        "store": args.store,
        "clients": args.clients,
        "group_commit_per_s": round(grouped["per_s"]),
        "group_commit_p50_ms": round(grouped["p50_ms"], 2),
        "group_commit_p99_ms": round(grouped["p99_ms"], 2),
        "naive_per_s": round(naive["per_s"]),
        "naive_p50_ms": round(naive["p50_ms"], 2),
        "naive_p99_ms": round(naive["p99_ms"], 2),
        "gain": round(grouped["per_s"] / naive["per_s"], 2) if naive["per_s"] else None,
        "errors": grouped["errors"] + naive["errors"],
        "stored_of_answered": [[run["stored"], run["answered"]] for run in (grouped, naive)],
    }
    for n, run in runs.items():
        if n != counts[0]:
            figures[f"group_commit_{n}_workers_per_s"] = round(run["per_s"])
            figures[f"group_commit_{n}_workers_p50_ms"] = round(run["p50_ms"], 2)
            figures[f"group_commit_{n}_workers_p99_ms"] = round(run["p99_ms"], 2)
            figures[f"group_commit_{n}_workers_stored_of_answered"] = [
                run["stored"],
                run["answered"],
            ]
    print(f"single-touchpoint HTTP, {args.clients} clients, {args.store}, {duration} s each")
    print(f"{'path':<34}{'touchpoints/s':>14}{'p50 ms':>9}{'p99 ms':>9}  stored of answered")
    named = [
        (f"group commit, {n} processes" if n > 1 else "group commit", r) for n, r in runs.items()
    ]
    for name, run in (*named, ("one transaction each (naive)", naive)):
        print(
            f"{name:<34}{run['per_s']:>14.0f}{run['p50_ms']:>9.2f}{run['p99_ms']:>9.2f}"
            f"{run['stored']:>9.0f} of {run['answered']:.0f}"
        )
    print(orjson.dumps(figures).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
