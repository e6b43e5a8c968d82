"""The store and the broker restarted under load, on private servers (the shared ones are
never restarted): the hub answers 503 problem documents with Retry-After while PostgreSQL is
down, recovers by itself and loses nothing it acknowledged; `hub ingest nats` reconnects to a
restarted nats-server and records everything published."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from hub.app import Hub
from hub.settings import Settings
from tests.conftest import IN_CI
from tests.integration.load_clients import (
    PROBLEM,
    Streamer,
    assert_nothing_half_written,
    call,
)
from tests.integration.nats_helpers import (
    HubProcess,
    consumer_state,
    process_env,
    publish_envelopes,
    recorded_sources,
    source_key,
    unique_nats,
    wait_until,
)
from tests.integration.private_servers import PrivateNats, PrivatePostgres, ServeProcess
from tests.stores import cli_env

OUTAGE_S = 3.0


def _started(server: type[PrivatePostgres] | type[PrivateNats]) -> PrivatePostgres | PrivateNats:
    try:
        return server()
    except (RuntimeError, OSError) as error:
        if IN_CI:
            pytest.fail(f"cannot start a private {server.__name__}: {error}")
        pytest.skip(f"cannot start a private {server.__name__}: {error}")


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    server = _started(PrivatePostgres)
    assert isinstance(server, PrivatePostgres)
    yield server
    server.close()


@pytest.fixture
def private_nats() -> Iterator[PrivateNats]:
    server = _started(PrivateNats)
    assert isinstance(server, PrivateNats)
    yield server
    server.close()


@pytest.mark.postgres
def test_postgres_restart_under_load_is_503_with_retry_after_then_recovers_losing_nothing(
    private_pg: PrivatePostgres, tmp_path
) -> None:
    settings = Settings(database_url=private_pg.url, pool_size=2)
    store_env = settings.eventsourcing_env()
    hub = Hub(store_env)  # creates the tables, and reads back afterwards
    try:
        env = process_env(store_env, Settings(), HUB_STORE_WAIT_S="2")
        server = ServeProcess(env, tmp_path / "serve.log")
        server.wait_ready()
        clients = Streamer(server.url, lambda i: call("pg", i), threads=4).start()
        clients.wait_for(100)
        private_pg.stop("immediate")  # as a crash: no checkpoint, connections cut
        time.sleep(OUTAGE_S)  # longer than the library's own retries (10 × 0.2 s) absorb
        wait_until(lambda: len(clients.unavailable) >= 8, timeout=60, what="503s")
        # A read meets the store outside the write path: a 503 problem too, not a 500.
        lookup = httpx.get(
            f"{server.url}/v1/customers", params={"email": "c1@pg.example.com"}, timeout=30
        )
        during = clients.sent()
        private_pg.start()
        restarted = time.monotonic()
        clients.wait_for(during + 50, timeout=90)
        recovered_in = time.monotonic() - restarted
        clients.wait_for(during + 100)
        clients.stop()
        server.process.terminate()

        assert lookup.status_code == 503, lookup.text
        assert lookup.headers["content-type"] == PROBLEM
        assert lookup.headers["retry-after"] == "1"
        assert lookup.json()["type"] == "/problems/store-unavailable"
        for seen in clients.unavailable:
            assert seen.content_type == PROBLEM
            assert seen.retry_after is not None and int(seen.retry_after) >= 1
            assert seen.problem["status"] == 503
            assert seen.problem["type"] == "/problems/store-unavailable"
        assert set(clients.answers.values()) <= {200, 201}
        assert recovered_in < 20, recovered_in  # the pool reconnects with back-off
        recorded = recorded_sources(hub)
        assert set(recorded) == set(clients.answers)
        assert set(recorded.values()) == {1}
        assert_nothing_half_written(hub, store_env, {**env, **cli_env(store_env)})
    finally:
        hub.close()


@pytest.mark.postgres
@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)
def test_nats_restart_under_ingest_reconnects_and_records_everything_published(
    store_env, hub: Hub, private_nats: PrivateNats, tmp_path
) -> None:
    settings = unique_nats(private_nats.url, nats_batch_size=20)
    env = process_env(store_env, settings)
    consumer = HubProcess(["ingest", "nats"], env, tmp_path / "ingest.log")
    consumer.wait_ready("hub: ingesting")
    before = [call("nats-before", i) for i in range(600)]
    after = [call("nats-after", i) for i in range(600)]
    asyncio.run(publish_envelopes(settings, before))
    wait_until(lambda: sum(recorded_sources(hub).values()) >= 100, what="first commits")
    private_nats.stop()  # with its store: the stream and the consumer survive
    time.sleep(OUTAGE_S)
    private_nats.start()
    deadline = time.monotonic() + 30
    while True:  # a publisher retries until the server is back
        try:
            acks = asyncio.run(publish_envelopes(settings, after))
            break
        except Exception:
            assert time.monotonic() < deadline, "the restarted server never took a publish"
            time.sleep(0.2)
    assert len(acks) == len(after)
    wait_until(lambda: len(recorded_sources(hub)) == len(before) + len(after), what="all")
    wait_until(lambda: asyncio.run(consumer_state(settings)) == (0, 0), what="all acked")
    assert consumer.terminate() == 0
    recorded = recorded_sources(hub)
    assert set(recorded) == {source_key(raw) for raw in before + after}
    assert set(recorded.values()) == {1}
