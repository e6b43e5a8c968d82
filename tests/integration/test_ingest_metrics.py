"""`hub ingest nats` serves its own metrics: the durable consumer's lag and its touchpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.nats_streams import ensure_stream
from hub.settings import Settings
from tests.factories import raw_touchpoint
from tests.integration.nats_helpers import (
    HubProcess,
    delete_streams,
    process_env,
    publish_envelopes,
    unique_nats,
)
from tests.integration.test_serve_process import free_port

pytestmark = pytest.mark.nats


@pytest.fixture
def settings(nats_url: str) -> Iterator[Settings]:
    made = unique_nats(nats_url)
    yield made
    delete_streams(made)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def create_stream(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        subjects = [f"{settings.nats_subject_prefix}.*", f"{settings.nats_rejected_prefix}.*"]
        await ensure_stream(nc.jetstream(), settings.nats_stream, subjects, 120.0)
    finally:
        await nc.close()


def test_consumer_lag_and_touchpoints_are_exposed_and_move(
    settings: Settings, tmp_path: Path
) -> None:
    store_env = Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}").eventsourcing_env()
    raws = [raw_touchpoint(source={"channel": "phone", "id": f"m-{i}"}) for i in range(300)]
    asyncio.run(create_stream(settings))
    asyncio.run(publish_envelopes(settings, raws))
    port = free_port()
    env = process_env(
        store_env, settings, HUB_INGEST_METRICS_PORT=str(port), HUB_NATS_BATCH_SIZE="1"
    )
    ingest = HubProcess(["ingest", "nats"], env, tmp_path / "ingest.log")
    try:
        ingest.wait_ready("ingest metrics on")
        pending_seen = []
        deadline = time.monotonic() + 60
        key = (
            "hub_touchpoints_total",
            (("channel", "phone"), ("outcome", "accepted"), ("reason", "")),
        )
        while True:
            samples = scrape(port)
            pending_seen.append(samples.get(("hub_nats_consumer", (("state", "pending"),)), -1))
            if samples.get(key) == len(raws) and pending_seen[-1] == 0:
                break
            assert time.monotonic() < deadline, (samples.get(key), pending_seen[-5:])
            time.sleep(0.3)
        assert max(pending_seen) > 0
        assert samples[("hub_append_seconds_count", (("path", "nats"),))] >= len(raws)
    finally:
        assert ingest.terminate() == 0
