"""`hub health ROLE`, the containers' healthchecks, against the real PostgreSQL and NATS: each
check fails in the situation it exists for and passes once the role does its work."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nats
import orjson
import pytest

from hub.app import Hub
from hub.envelope import parse_envelope
from hub.settings import Settings
from projections.runner import build_projections
from tests.conftest import pg_url
from tests.factories import raw_touchpoint
from tests.integration.nats_helpers import (
    ROOT,
    HubProcess,
    delete_streams,
    process_env,
    publish_envelopes,
    recorded_sources,
    source_key,
    unique_nats,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.nats]


@pytest.fixture
def settings(nats_url: str, pg_database: str) -> Iterator[Settings]:
    made = unique_nats(nats_url, database_url=pg_url(pg_database), pool_size=2)
    yield made
    delete_streams(made)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return process_env(settings.eventsourcing_env(), settings)


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    made = Hub(settings.eventsourcing_env())
    yield made
    made.close()


def health(env: dict[str, str], *args: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "health", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, json.loads(done.stdout)


def test_ingest_is_unhealthy_with_a_backlog_nobody_fetches(
    env: dict[str, str], settings: Settings, hub: Hub, tmp_path: Path
) -> None:
    code, report = health(env, "ingest")
    assert code == 1 and "no consumer" in str(report["reason"])
    worker = HubProcess(["ingest", "nats"], env, tmp_path / "ingest-1.log")
    worker.wait_ready("hub: ingesting")
    assert worker.terminate() == 0  # the consumer stays, nobody pulls from it
    raws = [raw_touchpoint(customer={"email": f"h{i}@health.example.com"}) for i in range(5)]
    asyncio.run(publish_envelopes(settings, raws))
    code, report = health(env, "ingest")
    assert code == 1 and report["pending"] == 5
    assert "nobody is fetching" in str(report["reason"])

    worker = HubProcess(["ingest", "nats"], env, tmp_path / "ingest-2.log")
    try:
        worker.wait_ready("hub: ingesting")
        keys = {source_key(raw) for raw in raws}
        wait_until(lambda: keys <= set(recorded_sources(hub)), what="ingestion")
        code, report = health(env, "ingest")
        assert code == 0 and report["healthy"] is True
    finally:
        worker.terminate()


def test_projections_are_unhealthy_past_max_lag_until_caught_up(
    env: dict[str, str], settings: Settings, hub: Hub
) -> None:
    for i in range(3):
        hub.record(parse_envelope(raw_touchpoint(customer={"email": f"p{i}@lag.example.com"})))
    code, report = health(env, "project", "--max-lag", "0")
    assert code == 1 and "behind" in str(report["reason"])
    assert health(env, "project")[0] == 0  # no limit given: lag alone is not ill health
    build_projections(hub, settings).catch_up()
    code, report = health(env, "project", "--max-lag", "0")
    assert code == 0 and report["lag"] == 0


def test_publisher_is_unhealthy_without_its_stream_or_past_max_lag(
    env: dict[str, str], hub: Hub, tmp_path: Path
) -> None:
    hub.record(parse_envelope(raw_touchpoint(customer={"email": "pub@lag.example.com"})))
    code, report = health(env, "publish")
    assert code == 1 and "no events stream" in str(report["reason"])
    publisher = HubProcess(["publish", "nats"], env, tmp_path / "publish.log")
    try:
        publisher.wait_ready("hub: publishing")
        head = hub.recorder.max_notification_id()
        wait_until(lambda: health(env, "publish", "--max-lag", "0")[0] == 0, what="publishing")
        assert health(env, "publish")[1]["position"] == head
    finally:
        publisher.terminate()
    hub.record(parse_envelope(raw_touchpoint(customer={"email": "pub2@lag.example.com"})))
    code, report = health(env, "publish", "--max-lag", "0")
    assert code == 1 and "behind" in str(report["reason"])


def test_api_is_unhealthy_when_nothing_answers(env: dict[str, str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, report = health(env, "api", "--url", f"http://127.0.0.1:{port}/healthz")
    assert code == 1 and report["healthy"] is False


def test_ingest_is_unhealthy_while_messages_wait_on_a_subject_no_partition_takes(
    settings: Settings, hub: Hub, tmp_path: Path
) -> None:
    """With partitions the stream keeps `<prefix>.<channel>.<anything>`: a message on a
    partition beyond HUB_NATS_PARTITIONS (or a token that is no partition) is recorded by no
    worker, so the check names it."""
    env = process_env(
        settings.eventsourcing_env(), settings, HUB_NATS_PARTITIONS="2", HUB_NATS_PARTITION="0"
    )
    worker = HubProcess(["ingest", "nats"], env, tmp_path / "ingest-p0.log")
    try:
        worker.wait_ready("hub: ingesting")
        assert health(env, "ingest")[0] == 0
        stray = raw_touchpoint(customer={"email": "stray@health.example.com"})

        async def publish_stray() -> None:
            nc = await nats.connect(settings.nats_url)
            await nc.jetstream().publish(
                f"{settings.nats_subject_prefix}.phone.5", orjson.dumps(stray)
            )
            await nc.close()

        asyncio.run(publish_stray())
        code, report = health(env, "ingest")
        assert code == 1, report
        assert "no partition's worker takes" in str(report["reason"])
        assert report["strays"] == {f"{settings.nats_subject_prefix}.phone.5": 1}
    finally:
        worker.terminate()
