"""Outbound events on the real nats-server: every recorded event once, in log order, across a
killed publisher; subjects by type; the position tracked in the hub's database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from adapters.nats_publish import NatsPublisher, tracking_recorder
from hub.app import Hub
from hub.envelope import parse_envelope
from hub.settings import Settings
from tests.factories import money, raw_touchpoint
from tests.integration.nats_helpers import (
    HubProcess,
    delete_streams,
    process_env,
    published_positions,
    stream_messages,
    unique_nats,
    wait_until,
)

pytestmark = pytest.mark.nats
READY = "hub: publishing"


@pytest.fixture
def settings(nats_url: str) -> Iterator[Settings]:
    made = unique_nats(nats_url, nats_batch_size=7)
    yield made
    delete_streams(made)


def record_calls(hub: Hub, n: int, run: str) -> None:
    """`n` touchpoints in batches of 10, over a handful of customers."""
    raws = [
        raw_touchpoint(
            source={"channel": "phone", "id": f"{run}-{i}"},
            customer={"email": f"c{i % 13}@{run}.example.com"},
        )
        for i in range(n)
    ]
    for start in range(0, n, 10):
        hub.record_batch([parse_envelope(raw) for raw in raws[start : start + 10]])


def events_in_stream(settings: Settings) -> list[Any]:
    return asyncio.run(
        stream_messages(settings, settings.nats_events_stream, settings.nats_events_prefix)
    )


def stream_positions(settings: Settings) -> list[int]:
    return [int(msg.headers["Hub-Position"]) for msg in events_in_stream(settings)]


def last_position(settings: Settings) -> int:
    async def last() -> int:
        import nats

        nc = await nats.connect(settings.nats_url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(settings.nats_events_stream)
            if not info.state.last_seq:
                return 0
            msg = await js.get_msg(settings.nats_events_stream, info.state.last_seq)
            return int(msg.headers["Hub-Position"])
        except Exception:
            return 0
        finally:
            await nc.close()

    return asyncio.run(last())


def test_events_consumer_sees_every_event_once_and_in_order_across_a_killed_publisher(
    store_env, hub: Hub, settings: Settings, tmp_path
) -> None:
    record_calls(hub, 300, "before")
    env = process_env(store_env, settings)
    first = HubProcess(["publish", "nats"], env, tmp_path / "first.log")
    first.wait_ready(READY)
    wait_until(lambda: last_position(settings) >= 40, what="first events published")
    first.kill()
    assert last_position(settings) < hub.recorder.max_notification_id()

    record_calls(hub, 100, "between")
    second = HubProcess(["publish", "nats"], env, tmp_path / "second.log")
    second.wait_ready(READY)
    record_calls(hub, 50, "while")
    expected = published_positions(hub)
    wait_until(lambda: last_position(settings) == expected[-1], what="all published")
    assert second.terminate() == 0

    messages = events_in_stream(settings)
    positions = [int(msg.headers["Hub-Position"]) for msg in messages]
    assert positions == expected  # every event, once, in log order
    assert [msg.headers["Nats-Msg-Id"] for msg in messages] == [str(p) for p in expected]
    assert [orjson.loads(msg.data)["position"] for msg in messages] == expected
    tracked = tracking_recorder(hub).max_tracking_id(
        f"{settings.nats_publisher}:{settings.nats_events_stream}"
    )
    assert tracked == hub.recorder.max_notification_id()


def quote(source_id: str, email: str, price: str) -> Any:
    return parse_envelope(
        raw_touchpoint(
            source={"channel": "sales", "id": source_id},
            type="quote.given",
            customer={"email": email},
            data={"sku": "SKU-1", "price": money(price), "valid_until": "2026-12-31T00:00:00Z"},
        )
    )


async def publish_all(hub: Hub, settings: Settings) -> NatsPublisher:
    publisher = NatsPublisher(hub, settings)
    await publisher.start()
    while await publisher.publish_page():
        pass
    await publisher.close()
    return publisher


def test_each_event_goes_to_the_subject_of_its_type(
    store_env, hub: Hub, settings: Settings
) -> None:
    first = hub.record(quote("q-1", "ann@example.com", "10.00"))
    hub.record_batch([quote("q-2", "ann@example.com", "12.00")])  # contradicts: rejected
    other = hub.record(parse_envelope(raw_touchpoint(customer={"email": "bob@example.com"})))
    hub.merge(first.customer_id, other.customer_id)

    asyncio.run(publish_all(hub, settings))
    prefix = settings.nats_events_prefix + "."
    subjects = [msg.subject.removeprefix(prefix) for msg in events_in_stream(settings)]
    assert subjects == [
        "customer.registered",
        "quote.given",
        "touchpoint.rejected",
        "customer.registered",
        "call.outbound",
        "customer.absorbed",
        "customer.merged",
    ]
    doc = orjson.loads(events_in_stream(settings)[1].data)
    assert doc["type"] == "quote.given"
    assert doc["stream_id"] == first.customer_id
    assert doc["event"]["touchpoint_id"] == first.touchpoint_id
    assert doc["event"]["data"]["price"] == {"amount": "10.00", "currency": "EUR"}


def test_a_publisher_that_lost_its_tracking_resumes_after_the_streams_last_event(
    store_env, hub: Hub, settings: Settings
) -> None:
    record_calls(hub, 30, "once")
    asyncio.run(publish_all(hub, settings))
    published = stream_positions(settings)

    # A crash between the publish and the tracking write, long after the duplicate window:
    # a publisher under a name with no tracking at all still sends nothing twice.
    forgetful = settings.model_copy(update={"nats_publisher": settings.nats_publisher + "-new"})
    record_calls(hub, 5, "later")
    asyncio.run(publish_all(hub, forgetful))
    assert stream_positions(settings) == published_positions(hub)
    assert len(published_positions(hub)) > len(published)


def test_lost_events_stream_is_recreated_and_publishing_goes_on(
    store_env, hub: Hub, settings: Settings
) -> None:
    record_calls(hub, 10, "gone")

    async def scenario() -> None:
        publisher = NatsPublisher(hub, settings)
        await publisher.start()
        stop = asyncio.Event()
        running = asyncio.ensure_future(publisher.run(stop))
        while publisher.position < hub.recorder.max_notification_id():
            await asyncio.sleep(0.05)
        assert publisher.js is not None
        await publisher.js.delete_stream(settings.nats_events_stream)
        await asyncio.to_thread(record_calls, hub, 5, "after")
        while publisher.position < hub.recorder.max_notification_id():
            await asyncio.sleep(0.05)
        stop.set()
        await running

    asyncio.run(scenario())
    positions = stream_positions(settings)
    assert positions and positions == sorted(set(positions))
    assert positions[-1] == hub.recorder.max_notification_id()
