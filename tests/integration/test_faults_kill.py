"""Kill -9 under load: `hub serve` and `hub ingest nats` are SIGKILLed and restarted while
clients stream touchpoints; whatever was acknowledged is in the store exactly once, nothing
is half-written, and what was never acknowledged is recorded after the restart."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from hub.app import Hub
from hub.settings import Settings
from tests.integration.load_clients import Streamer, assert_nothing_half_written, call
from tests.integration.nats_helpers import (
    HubProcess,
    consumer_state,
    delete_streams,
    process_env,
    publish_envelopes,
    recorded_sources,
    source_key,
    unique_nats,
    wait_until,
)
from tests.integration.private_servers import ServeProcess

# On PostgreSQL, the production store.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("store_env", ["postgres"], indirect=True),
]
KILLS = 3


def test_touchpoints_acknowledged_over_http_survive_kill_9_exactly_once(
    store_env, hub: Hub, tmp_path
) -> None:
    env = process_env(store_env, Settings())
    server = ServeProcess(env, tmp_path / "serve.log")
    server.wait_ready()
    clients = Streamer(server.url, lambda i: call("http", i), threads=6).start()
    for kill in range(KILLS):
        clients.wait_for(40 * (kill + 1))
        server.process.kill()  # SIGKILL, mid-request: the clients see broken connections
        server = server.restarted()
        server.wait_ready()
    clients.wait_for(40 * (KILLS + 1))
    clients.stop()
    server.process.terminate()  # uvicorn re-raises SIGTERM after its shutdown: no exit code

    assert sum(clients.broken.values()) > 0, "no request was in flight at a kill"
    assert set(clients.answers.values()) <= {200, 201}
    recorded = recorded_sources(hub)
    # Each touchpoint answered 201/200 is stored once; one cut off mid-request and sent again
    # is stored once too (its retry was told 200, the first result, if the first had landed).
    assert set(recorded) == set(clients.answers)
    assert set(recorded.values()) == {1}
    assert_nothing_half_written(hub, store_env, env)


def test_touchpoints_published_to_nats_survive_kill_9_of_the_consumer_exactly_once(
    store_env, hub: Hub, nats_url: str, tmp_path
) -> None:
    settings = unique_nats(nats_url, nats_batch_size=20, nats_ack_wait_s=1.0)
    try:
        env = process_env(store_env, settings)
        raws = [call("nats", i, customers=80) for i in range(2400)]
        acked: list[Any] = []

        def publish_steadily() -> None:
            for start in range(0, len(raws), 200):
                acked.extend(asyncio.run(publish_envelopes(settings, raws[start : start + 200])))
                time.sleep(0.15)

        publishing = threading.Thread(target=publish_steadily)
        consumer = HubProcess(["ingest", "nats"], env, tmp_path / "ingest.log")
        consumer.wait_ready("hub: ingesting")
        publishing.start()
        for kill in range(KILLS):
            wait_until(
                lambda k=kill: sum(recorded_sources(hub).values()) >= 300 * (k + 1),
                what=f"commits before kill {kill + 1}",
            )
            consumer.kill()
            consumer = HubProcess(["ingest", "nats"], env, tmp_path / "ingest.log")
            consumer.wait_ready("hub: ingesting")
        publishing.join(60)
        assert len(acked) == len(raws) and not any(ack.duplicate for ack in acked)
        # Messages fetched but not acked when the consumer died come back after ack_wait.
        wait_until(lambda: len(recorded_sources(hub)) == len(raws), what="all recorded")
        wait_until(lambda: asyncio.run(consumer_state(settings)) == (0, 0), what="all acked")
        assert consumer.terminate() == 0
        recorded = recorded_sources(hub)
        assert set(recorded) == {source_key(raw) for raw in raws}
        assert set(recorded.values()) == {1}
        assert_nothing_half_written(hub, store_env, env)
    finally:
        delete_streams(settings)
