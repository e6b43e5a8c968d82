"""NATS ingestion against the real nats-server and stores: exactly once across a killed
consumer, duplicates, the rejected subject, a store outage, JetStream state loss, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import nats
import orjson
import pytest
from nats.js.api import Header

from adapters.nats_ingest import NatsIngest
from adapters.nats_streams import ensure_stream, inbound_subjects, partition_key, partition_of
from hub.app import Hub
from hub.settings import Settings
from tests.factories import money, raw_touchpoint
from tests.integration.nats_helpers import (
    HubProcess,
    consumer_state,
    delete_streams,
    process_env,
    publish_envelopes,
    recorded_sources,
    source_key,
    stream_messages,
    unique_nats,
    wait_until,
)
from tests.stores import RawStore

pytestmark = pytest.mark.nats
READY = "hub: ingesting"


@pytest.fixture
def nats_settings(nats_url: str) -> Iterator[Callable[..., Settings]]:
    """Build settings with this test's own stream, consumer and subjects; deleted afterwards."""
    made: list[Settings] = []

    def build(**overrides: Any) -> Settings:
        settings = unique_nats(nats_url, **overrides)
        made.append(settings)
        return settings

    yield build
    for settings in made:
        delete_streams(settings)


def calls(n: int, customers: int, run: str = "r") -> list[dict[str, Any]]:
    return [
        raw_touchpoint(
            source={"channel": "phone", "id": f"{run}-call-{i}"},
            customer={"email": f"c{i % customers}@{run}.example.com"},
        )
        for i in range(n)
    ]


async def ingest_until_drained(
    hub: Hub, settings: Settings, action: Any = None, timeout: float = 30.0, **kwargs: Any
) -> NatsIngest:
    """Run an in-process consumer until every message was settled (`action` runs meanwhile)."""
    ingest = NatsIngest(hub, settings, **kwargs)
    await ingest.start()
    stop = asyncio.Event()
    running = asyncio.ensure_future(ingest.run(stop))
    try:
        if action is not None:
            await action(ingest)
        deadline = asyncio.get_running_loop().time() + timeout
        while await consumer_state(settings) != (0, 0):
            assert asyncio.get_running_loop().time() < deadline, await consumer_state(settings)
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await running
    return ingest


def test_killed_consumer_restarted_records_every_touchpoint_exactly_once(
    store_env, hub: Hub, nats_settings, tmp_path
) -> None:
    settings = nats_settings(nats_batch_size=10)
    raws = calls(1000, customers=100)
    env = process_env(store_env, settings)
    first = HubProcess(["ingest", "nats"], env, tmp_path / "first.log")
    first.wait_ready(READY)
    asyncio.run(publish_envelopes(settings, raws))
    wait_until(lambda: (hub.recorder.max_notification_id() or 0) >= 100, what="first commits")
    first.kill()
    assert sum(recorded_sources(hub).values()) < len(raws), "killed too late to test anything"

    second = HubProcess(["ingest", "nats"], env, tmp_path / "second.log")
    wait_until(lambda: len(recorded_sources(hub)) == len(raws), what="all recorded")
    assert second.terminate() == 0
    recorded = recorded_sources(hub)
    assert set(recorded) == {source_key(raw) for raw in raws}
    assert set(recorded.values()) == {1}
    assert asyncio.run(consumer_state(settings)) == (0, 0)


def test_duplicate_inside_the_window_is_dropped_by_the_server(
    store_env, hub: Hub, nats_settings
) -> None:
    settings = nats_settings()
    raw = raw_touchpoint()

    async def scenario() -> NatsIngest:
        async def publish_twice(_: NatsIngest) -> None:
            first, again = await publish_envelopes(settings, [raw, raw])
            assert not first.duplicate
            assert again.duplicate and again.seq == first.seq

        return await ingest_until_drained(hub, settings, publish_twice)

    ingest = asyncio.run(scenario())
    assert recorded_sources(hub) == {source_key(raw): 1}
    assert (ingest.stats.recorded, ingest.stats.duplicates) == (1, 0)


def test_duplicate_outside_the_window_is_dropped_by_the_hub(
    store_env, hub: Hub, nats_settings
) -> None:
    settings = nats_settings(nats_duplicate_window_s=0.5)
    raw = raw_touchpoint()

    async def scenario() -> NatsIngest:
        async def publish_late_again(_: NatsIngest) -> None:
            (first,) = await publish_envelopes(settings, [raw])
            await asyncio.sleep(2.0)  # the server forgets the Nats-Msg-Id
            (again,) = await publish_envelopes(settings, [raw])
            assert not again.duplicate and again.seq != first.seq

        return await ingest_until_drained(hub, settings, publish_late_again)

    ingest = asyncio.run(scenario())
    assert recorded_sources(hub) == {source_key(raw): 1}
    assert (ingest.stats.recorded, ingest.stats.duplicates) == (1, 1)


def quote(source_id: str, email: str, price: str) -> dict[str, Any]:
    return raw_touchpoint(
        source={"channel": "sales", "id": source_id},
        type="quote.given",
        customer={"email": email},
        data={"sku": "SKU-1", "price": money(price), "valid_until": "2026-12-31T00:00:00Z"},
    )


def test_bad_messages_go_to_the_rejected_subject_with_the_reason_and_the_rest_commit(
    store_env, hub: Hub, nats_settings
) -> None:
    settings = nats_settings()
    hub.record_batch(
        [
            parse(raw_touchpoint(customer={"email": "ann@example.com"})),
            parse(raw_touchpoint(customer={"phone": "+49 30 1234567"})),
        ]
    )
    good = [raw_touchpoint(customer={"email": f"good{i}@example.com"}) for i in range(3)]
    invalid = raw_touchpoint(customer={})
    first_quote = quote("q-1", "quoted@example.com", "10.00")
    contradicting = quote("q-2", "quoted@example.com", "12.00")
    ambiguous = raw_touchpoint(customer={"email": "ann@example.com", "phone": "+49301234567"})
    wrong_channel = raw_touchpoint(source={"channel": "email", "id": "<m1@x>"})

    async def scenario() -> None:
        async def publish(_: NatsIngest) -> None:
            nc = await nats.connect(settings.nats_url)
            await nc.jetstream().publish(
                f"{settings.nats_subject_prefix}.phone",
                b"{not json",
                headers={Header.MSG_ID.value: "garbage"},
            )
            await nc.jetstream().publish(  # on the phone subject, naming another channel
                f"{settings.nats_subject_prefix}.phone", orjson.dumps(wrong_channel)
            )
            await nc.close()
            await publish_envelopes(
                settings, [good[0], invalid, first_quote, good[1], contradicting, ambiguous]
            )
            await publish_envelopes(settings, [good[2]])

        await ingest_until_drained(hub, settings, publish)

    asyncio.run(scenario())
    recorded = recorded_sources(hub)
    for raw in [*good, first_quote]:
        assert recorded[source_key(raw)] == 1
    for raw in (invalid, contradicting, ambiguous, wrong_channel):
        assert source_key(raw) not in recorded

    rejected = asyncio.run(
        stream_messages(settings, settings.nats_stream, settings.nats_rejected_prefix)
    )
    docs = [orjson.loads(msg.data) for msg in rejected]
    assert {msg.subject for msg in rejected} == {
        f"{settings.nats_rejected_prefix}.phone",
        f"{settings.nats_rejected_prefix}.sales",
    }
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for msg, doc in zip(rejected, docs, strict=True):
        assert msg.headers["Hub-Problem-Type"] == doc["problem"]["type"]
        by_kind.setdefault(doc["problem"]["type"], []).append(doc)
    assert sorted((k, len(v)) for k, v in by_kind.items()) == [
        ("ambiguous-identity", 1),
        ("conflict", 1),
        ("invalid-input", 3),
    ]
    details = " | ".join(d["problem"]["detail"] for d in by_kind["invalid-input"])
    assert "not JSON" in details
    assert "customer" in details
    assert "names channel 'email'" in details
    (conflict,) = by_kind["conflict"]
    assert conflict["problem"]["conflicts"][0]["rule"] == "claim-vs-claim"
    assert orjson.loads(conflict["message"]) == contradicting
    garbage = next(d for d in by_kind["invalid-input"] if "not JSON" in d["problem"]["detail"])
    assert garbage["message"] == "{not json"


def test_a_number_beyond_64_bits_goes_to_the_rejected_subject_named(
    store_env, hub: Hub, nats_settings
) -> None:
    """orjson reads 2**64 as a float: the message was recorded with the number rounded. It is
    rejected now with the place named, and the rest of its batch commits."""
    settings = nats_settings()
    good = raw_touchpoint(customer={"email": "exact@example.com"})
    big = raw_touchpoint(customer={"email": "exact@example.com"})
    body = orjson.dumps(big).replace(b'"data":{', b'"data":{"n":18446744073709551616,')

    async def scenario() -> None:
        async def publish(_: NatsIngest) -> None:
            nc = await nats.connect(settings.nats_url)
            await nc.jetstream().publish(f"{settings.nats_subject_prefix}.phone", body)
            await nc.close()
            await publish_envelopes(settings, [good])

        await ingest_until_drained(hub, settings, publish)

    asyncio.run(scenario())
    recorded = recorded_sources(hub)
    assert recorded[source_key(good)] == 1
    assert source_key(big) not in recorded
    (rejected,) = asyncio.run(
        stream_messages(settings, settings.nats_stream, settings.nats_rejected_prefix)
    )
    problem = orjson.loads(rejected.data)["problem"]
    assert problem["errors"][0] == {"field": "data.n", "message": "a number beyond 64 bits"}


def parse(raw: dict[str, Any]) -> Any:
    from hub.envelope import parse_envelope

    return parse_envelope(raw)


def test_store_outage_is_retried_with_back_off_and_nothing_is_lost(
    store_env, hub: Hub, nats_settings
) -> None:
    # A writer that gives up after a second's wait for the lock: the store is "down".
    short = Hub({**store_env, "POSTGRES_LOCK_TIMEOUT": "1", "SQLITE_LOCK_TIMEOUT": "1"})
    settings = nats_settings()
    raws = calls(5, customers=5, run="outage")
    raw_store = RawStore(hub, store_env)

    def lock() -> None:
        if raw_store.sqlite:
            raw_store.execute("BEGIN IMMEDIATE")
        else:
            raw_store.execute("BEGIN")
            raw_store.execute("LOCK TABLE {events} IN EXCLUSIVE MODE")

    async def scenario() -> NatsIngest:
        async def outage(ingest: NatsIngest) -> None:
            lock()
            try:
                await publish_envelopes(settings, raws)
                while ingest.stats.retried < 2 * len(raws):  # naked at least twice each
                    await asyncio.sleep(0.1)
                assert recorded_sources(hub) == {}
            finally:
                raw_store.execute("ROLLBACK")

        return await ingest_until_drained(short, settings, outage, timeout=60)

    try:
        ingest = asyncio.run(scenario())
    finally:
        raw_store.close()
        short.close()
    recorded = recorded_sources(hub)
    assert recorded == {source_key(raw): 1 for raw in raws}
    assert ingest.stats.recorded == len(raws)


def test_lost_stream_and_consumer_are_recreated(store_env, hub: Hub, nats_settings) -> None:
    settings = nats_settings()
    before, after = calls(2, customers=2, run="loss")

    async def scenario() -> None:
        async def lose_state(ingest: NatsIngest) -> None:
            await publish_envelopes(settings, [before])
            while recorded_sources(hub) == {}:
                await asyncio.sleep(0.05)
            nc = await nats.connect(settings.nats_url)
            await nc.jetstream().delete_stream(settings.nats_stream)  # as a wiped server would
            await nc.close()
            for _ in range(100):  # publishers retry until the consumer recreated the stream
                try:
                    await publish_envelopes(settings, [after])
                    return
                except Exception:
                    await asyncio.sleep(0.1)
            raise AssertionError("the stream was not recreated")

        await ingest_until_drained(hub, settings, lose_state, check_every=0.3)

    asyncio.run(scenario())
    assert recorded_sources(hub) == {source_key(before): 1, source_key(after): 1}


def test_sigterm_finishes_the_batch_and_acks_everything_it_committed(
    store_env, hub: Hub, nats_settings, tmp_path
) -> None:
    settings = nats_settings(nats_batch_size=25)
    raws = calls(1500, customers=150, run="term")
    env = process_env(store_env, settings)
    first = HubProcess(["ingest", "nats"], env, tmp_path / "first.log")
    first.wait_ready(READY)
    asyncio.run(publish_envelopes(settings, raws))
    wait_until(lambda: (hub.recorder.max_notification_id() or 0) >= 100, what="first commits")
    assert first.terminate() == 0
    done = first.stats("ingest")
    assert sum(recorded_sources(hub).values()) == done["recorded"] < len(raws)

    second = HubProcess(["ingest", "nats"], env, tmp_path / "second.log")
    wait_until(lambda: len(recorded_sources(hub)) == len(raws), what="all recorded")
    assert second.terminate() == 0
    # Nothing the first process committed came back: it acked all of it before exiting.
    assert second.stats("ingest")["duplicates"] == 0
    assert set(recorded_sources(hub).values()) == {1}


@pytest.mark.parametrize("store_env", ["postgres"], indirect=True)
def test_two_consumer_processes_share_the_work_and_record_each_touchpoint_once(
    store_env, hub: Hub, nats_settings, tmp_path
) -> None:
    settings = nats_settings(nats_batch_size=20)
    raws = calls(1200, customers=200, run="shared")
    env = process_env(store_env, settings)
    workers = [HubProcess(["ingest", "nats"], env, tmp_path / f"w{i}.log") for i in range(2)]
    for worker in workers:
        worker.wait_ready(READY)
    asyncio.run(publish_envelopes(settings, raws))
    wait_until(lambda: len(recorded_sources(hub)) == len(raws), what="all recorded")
    assert [worker.terminate() for worker in workers] == [0, 0]
    assert set(recorded_sources(hub).values()) == {1}
    shares = [worker.stats("ingest")["recorded"] for worker in workers]
    assert sum(shares) == len(raws)
    assert all(share > 0 for share in shares), shares


def test_each_partition_is_taken_by_its_own_worker_and_the_unpartitioned_by_the_shared_one(
    store_env, hub: Hub, nats_settings
) -> None:
    """`<prefix>.<channel>.<N>` goes to the worker of partition N alone (a consumer of its
    own), `<prefix>.<channel>` to the shared consumer alone; a refused partitioned message is
    dead-lettered under its channel."""
    shared = nats_settings(nats_partitions=2)
    by_partition = [shared.model_copy(update={"nats_partition": n}) for n in (0, 1)]
    raws = calls(12, customers=6, run="part")
    parts = [partition_of(partition_key(raw), 2) for raw in raws]
    assert set(parts) == {0, 1}  # the six customers fall in both partitions
    plain = raw_touchpoint(source={"channel": "phone", "id": "unpartitioned-1"})
    refused = raw_touchpoint(source={"channel": "phone", "id": "refused-1"}, customer={})

    async def scenario() -> list[set[str]]:
        nc = await nats.connect(shared.nats_url)
        subjects = inbound_subjects(shared.nats_subject_prefix, shared.nats_rejected_prefix)
        await ensure_stream(nc.jetstream(), shared.nats_stream, subjects, 60.0)
        await nc.close()
        await publish_envelopes(shared, [*raws, refused], partitions=2)
        await publish_envelopes(shared, [plain])
        seen = []
        for settings in [*by_partition, shared]:
            before = set(recorded_sources(hub))
            await ingest_until_drained(hub, settings)
            seen.append(set(recorded_sources(hub)) - before)
        return seen

    first, second, unpartitioned = asyncio.run(scenario())
    assert first == {source_key(r) for r, p in zip(raws, parts, strict=True) if p == 0}
    assert second == {source_key(r) for r, p in zip(raws, parts, strict=True) if p == 1}
    assert unpartitioned == {source_key(plain)}
    (dead,) = asyncio.run(stream_messages(shared, shared.nats_stream, shared.nats_rejected_prefix))
    assert dead.subject == f"{shared.nats_rejected_prefix}.phone"
    assert orjson.loads(dead.data)["subject"].startswith(f"{shared.nats_subject_prefix}.phone.")


def test_a_stream_made_before_partitions_gets_their_subjects(
    store_env, hub: Hub, nats_settings
) -> None:
    """A stream created with the unpartitioned subjects only (as before partitions existed)
    is given `<prefix>.*.*` when a worker starts, in place of the rejected subjects it covers;
    what it held stays."""
    settings = nats_settings()
    old = [f"{settings.nats_subject_prefix}.*", f"{settings.nats_rejected_prefix}.*"]
    early = raw_touchpoint(source={"channel": "phone", "id": "before-partitions"})
    later = raw_touchpoint(source={"channel": "phone", "id": "after-partitions"})

    async def scenario() -> list[str]:
        nc = await nats.connect(settings.nats_url)
        js = nc.jetstream()
        await js.add_stream(name=settings.nats_stream, subjects=old)
        await nc.close()
        await publish_envelopes(settings, [early])
        partitioned = settings.model_copy(update={"nats_partitions": 1, "nats_partition": 0})

        async def publish(_: NatsIngest) -> None:
            await publish_envelopes(settings, [later], partitions=1)

        await ingest_until_drained(hub, partitioned, publish)
        await ingest_until_drained(hub, settings)
        nc = await nats.connect(settings.nats_url)
        info = await nc.jetstream().stream_info(settings.nats_stream)
        await nc.close()
        return list(info.config.subjects or [])

    subjects = asyncio.run(scenario())
    assert sorted(subjects) == sorted(
        [f"{settings.nats_subject_prefix}.*", f"{settings.nats_subject_prefix}.*.*"]
    )
    recorded = recorded_sources(hub)
    assert (recorded[source_key(early)], recorded[source_key(later)]) == (1, 1)


def test_unpartitioned_the_stream_takes_no_partitioned_subject(
    store_env, hub: Hub, nats_settings
) -> None:
    """Without HUB_NATS_PARTITIONS a publish to a partition fails at the publisher (no stream
    takes it) instead of waiting for a worker nobody runs; a stream already wider than the
    subjects wanted (`<prefix>.>`) is left as it is and ingests."""
    settings = nats_settings()
    wide = nats_settings()
    touchpoint = raw_touchpoint(source={"channel": "phone", "id": "wide-1"})

    async def scenario() -> tuple[Any, list[str]]:
        await ingest_until_drained(hub, settings)  # creates the stream
        nc = await nats.connect(settings.nats_url)
        js = nc.jetstream()
        try:
            await js.publish(f"{settings.nats_subject_prefix}.phone.0", b"{}", timeout=1.0)
            refused = None
        except Exception as error:  # no stream answers: the publisher learns at once
            refused = error
        await js.add_stream(name=wide.nats_stream, subjects=[f"{wide.nats_subject_prefix}.>"])
        await nc.close()

        async def publish(_: NatsIngest) -> None:
            await publish_envelopes(wide, [touchpoint])

        await ingest_until_drained(hub, wide, publish)
        nc = await nats.connect(settings.nats_url)
        info = await nc.jetstream().stream_info(wide.nats_stream)
        await nc.close()
        return refused, list(info.config.subjects or [])

    refused, subjects = asyncio.run(scenario())
    assert refused is not None
    assert subjects == [f"{wide.nats_subject_prefix}.>"]
    assert recorded_sources(hub)[source_key(touchpoint)] == 1
