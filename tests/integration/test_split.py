"""The production split as local processes (`scripts/split`): two API servers without
projections, one `hub ingest nats`, one `hub project`, one `hub publish nats`, on the real
PostgreSQL (a database of this module) and NATS (streams of this run). Touchpoints posted to
both APIs and published over NATS land once; each API reads writes made through the other;
the publisher emits every event once, in log order."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.app import Hub
from hub.settings import Settings
from tests.conftest import pg_url
from tests.factories import raw_touchpoint
from tests.integration.nats_helpers import (
    ROOT,
    delete_streams,
    process_env,
    publish_envelopes,
    published_positions,
    recorded_sources,
    source_key,
    stream_messages,
    unique_nats,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.nats]
PER_API = 30
OVER_NATS = 60


def free_ports(count: int) -> int:
    """A first port with `count` consecutive free ports from it."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise AssertionError("no free ports")


@dataclass
class Split:
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    settings: Settings
    apis: list[str]
    hub: Hub
    ingest_health_before: int
    positions: dict[str, int] = field(default_factory=dict)  # source key -> position
    customers: dict[str, str] = field(default_factory=dict)  # source key -> customer id
    sent: list[dict[str, Any]] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def health(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", "health", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def split(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    from tests.conftest import require_nats

    settings = unique_nats(require_nats())
    store_env = Settings(database_url=pg_url(pg_database)).eventsourcing_env()
    env = process_env(store_env, settings, HUB_READ_WAIT_S="20", PATH=os.environ["PATH"])
    env.pop("HUB_POOL_SIZE", None)
    log = tmp_path_factory.mktemp("split") / "split.log"
    port = free_ports(2)
    unhealthy_before = subprocess.run(
        [sys.executable, "-m", "api.cli", "health", "ingest"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ROOT / "scripts/split"), "--apis", "2", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a failed test can end every role at once
        )
    hub = Hub(store_env)
    apis = [f"http://127.0.0.1:{p}" for p in (port, port + 1)]
    made = Split(proc, log, env, settings, apis, hub, unhealthy_before.returncode)
    try:
        wait_until(
            lambda: "split: ready" in made.output() or proc.poll() is not None,
            timeout=180,  # five processes and their health checks on a busy machine
            what="the split to start",
        )
        assert proc.poll() is None, made.output()
        yield made
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        hub.close()
        delete_streams(settings)


@pytest.fixture(scope="module")
def traffic(split: Split) -> Split:
    """Touchpoints posted over HTTP to both APIs (each key twice, once to each API) while
    channels publish others over NATS; waits until the store holds them all."""
    run = uuid.uuid4().hex[:8]
    over_http = [
        raw_touchpoint(
            source={"channel": "phone", "id": f"{run}-http-{i}"},
            customer={"email": f"c{i % 7}@{run}.example.com"},
        )
        for i in range(2 * PER_API)
    ]
    over_nats = [
        raw_touchpoint(
            type="call.inbound",
            source={"channel": "phone", "id": f"{run}-nats-{i}"},
            customer={"email": f"c{i % 7}@{run}.example.com"},
        )
        for i in range(OVER_NATS)
    ]

    async def post_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            posts = [
                client.post(f"{split.apis[(i + again) % 2]}/v1/touchpoints", json=raw)
                for again in (0, 1)
                for i, raw in enumerate(over_http)
            ]
            sending = asyncio.ensure_future(publish_envelopes(split.settings, over_nats))
            answers = await asyncio.gather(*posts)
            await sending
            return list(answers)

    answers = asyncio.run(post_all())
    for raw, answer in zip(over_http * 2, answers, strict=True):
        assert answer.status_code in (200, 201), answer.text
        body = answer.json()
        key = source_key(raw)
        if key in split.positions:
            assert body["touchpoint_id"] == split.customers[key + "#tp"]
        split.positions.setdefault(key, body["position"])
        split.customers[key] = body["customer_id"]
        split.customers.setdefault(key + "#tp", body["touchpoint_id"])
    split.sent = over_http + over_nats
    keys = {source_key(raw) for raw in split.sent}
    wait_until(lambda: keys <= set(recorded_sources(split.hub)), timeout=120, what="NATS ingestion")
    return split


def test_health_of_ingest_fails_before_its_consumer_exists(split: Split) -> None:
    assert split.ingest_health_before == 1


def test_every_role_reports_healthy_while_the_split_runs(split: Split) -> None:
    for args in (
        ["api", "--url", f"{split.apis[0]}/healthz"],
        ["api", "--url", f"{split.apis[1]}/healthz"],
        ["ingest"],
        ["project", "--max-lag", "1000"],
        ["publish", "--max-lag", "1000"],
    ):
        checked = split.health(*args)
        assert checked.returncode == 0, (args, checked.stdout, checked.stderr)
        assert '"healthy":true' in checked.stdout


def test_touchpoints_sent_to_both_apis_and_over_nats_are_recorded_once(traffic: Split) -> None:
    found = recorded_sources(traffic.hub)
    wanted = {source_key(raw) for raw in traffic.sent}
    assert len(wanted) == 2 * PER_API + OVER_NATS
    assert {key: found[key] for key in wanted} == dict.fromkeys(wanted, 1)
    assert set(found) == wanted


def test_each_api_reads_writes_made_through_the_other_with_min_position(traffic: Split) -> None:
    head = traffic.hub.recorder.max_notification_id()
    by_email = {
        raw["customer"]["email"]: traffic.customers[source_key(raw)]
        for raw in traffic.sent[: 2 * PER_API]
    }
    for api in traffic.apis:
        for email, customer_id in by_email.items():
            answer = httpx.get(
                f"{api}/v1/customers/{customer_id}/timeline",
                params={"min_position": head, "limit": 200},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            assert int(answer.headers["X-Projection-Position"]) >= head
            shown = {entry["source_id"] for entry in answer.json()["entries"]}
            # Its touchpoints over HTTP (through both APIs) and over NATS, every one.
            assert shown == {
                r["source"]["id"] for r in traffic.sent if r["customer"] == {"email": email}
            }


def test_publisher_emits_every_event_once_in_log_order(traffic: Split) -> None:
    expected = published_positions(traffic.hub)

    def published() -> list[int]:
        messages = asyncio.run(
            stream_messages(
                traffic.settings,
                traffic.settings.nats_events_stream,
                traffic.settings.nats_events_prefix,
            )
        )
        return [int(msg.headers["Hub-Position"]) for msg in messages]

    wait_until(lambda: len(published()) >= len(expected), timeout=60, what="the publisher")
    assert published() == expected


def test_split_stops_every_role_on_sigterm(traffic: Split) -> None:
    traffic.proc.send_signal(signal.SIGTERM)
    assert traffic.proc.wait(60) == 0
    out = traffic.output()
    assert "split: stopped" in out
    assert "[ingest-1] hub: ingest stopped:" in out
    assert "[publish] hub: publish stopped:" in out
    for api in traffic.apis:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{api}/healthz", timeout=2)
