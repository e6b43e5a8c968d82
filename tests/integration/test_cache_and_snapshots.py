"""The aggregate cache and snapshots, on both stores: a cached customer is never stale for a
decision, the cache stays within its size, and a customer loaded from a snapshot is the
customer a full replay gives, sealed at rest and gone on erasure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest

from hub.app import Hub
from hub.errors import ConflictError
from tests.factories import money, touchpoint
from tests.stores import RawStore

EMAIL = "marta.kowalska@example.org"
NAME = "Marta Kowalska"


def quote(price: str, source: str, email: str = EMAIL) -> Any:
    return touchpoint(
        type="quote.given",
        source={"channel": "sales", "id": source},
        customer={"email": email},
        data={"sku": "SKU-1", "price": money(price), "valid_until": "2026-12-31T00:00:00Z"},
    )


def call(source: str, email: str = EMAIL) -> Any:
    return touchpoint(
        type="call.inbound",
        source={"channel": "phone", "id": source},
        customer={"email": email},
        data={"summary": f"{NAME} called about her order", "duration_s": 60},
    )


@pytest.fixture
def snapshotting(make_hub: Callable[..., Hub], store_env: dict[str, str]) -> Iterator[Any]:
    """Hubs on the test's store that snapshot every 5 events (or never: interval 0)."""
    hubs: list[Hub] = []

    def build(interval: int = 5, cache: int = 10_000) -> Hub:
        env = {**store_env, "SNAPSHOT_INTERVAL": str(interval), "AGGREGATE_CACHE_SIZE": str(cache)}
        hub = Hub(env)
        hubs.append(hub)
        return hub

    yield build
    for hub in hubs:
        hub.close()


def snapshot_rows(hub: Hub, store_env: dict[str, str], customer_id: str) -> list[Any]:
    raw = RawStore(hub, store_env)
    try:
        assert hub.store.snapshots_table
        return raw.execute(
            f"SELECT originator_version, state FROM {hub.store.snapshots_table} "
            f"WHERE originator_id = {raw.p}",
            (raw.stream_id(customer_id),),
        )
    finally:
        raw.close()


# -- the cache --------------------------------------------------------------------------------


def test_a_customer_cached_by_one_hub_sees_what_another_hub_recorded(
    make_hub: Callable[..., Hub],
) -> None:
    first, second = make_hub(), make_hub()
    customer = first.record(call("c-1")).customer_id  # now cached by `first`
    second.record(quote("19.90", "q-1"))
    with pytest.raises(ConflictError) as rejected:
        first.record(quote("1.00", "q-2"))
    assert rejected.value.conflicts[0].rule == "claim-vs-claim"
    assert first.load_customers([customer])[customer].version == 3


def test_a_cached_customer_is_refreshed_with_only_the_newer_events(
    make_hub: Callable[..., Hub],
) -> None:
    first, second = make_hub(), make_hub()
    customer = first.record(call("c-1")).customer_id
    second.record(call("c-2"))
    second.record(call("c-3"))
    first.record(call("c-4"))
    assert first.cache.hits >= 1
    assert first.load_customers([customer])[customer].state.touchpoints == 4
    assert first.verify().ok


def test_the_cache_holds_at_most_its_size(snapshotting: Any) -> None:
    hub = snapshotting(cache=3)
    for i in range(6):
        hub.record(call(f"c-{i}", email=f"someone.{i}@example.org"))
    assert len(hub.cache) == 3


def test_without_a_cache_every_decision_reads_the_store(snapshotting: Any) -> None:
    hub = snapshotting(cache=0)
    hub.record(quote("19.90", "q-1"))
    with pytest.raises(ConflictError):
        hub.record(quote("1.00", "q-2"))
    assert len(hub.cache) == 0 and hub.cache.hits == 0


def test_a_batch_that_loses_a_race_leaves_no_stale_customer_in_the_cache(
    make_hub: Callable[..., Hub],
) -> None:
    first, second = make_hub(), make_hub()
    customer = first.record(quote("19.90", "q-1")).customer_id
    # `second` appends behind `first`'s back; `first`'s next save would clash if it decided
    # on its cached copy, so it must decide on the refreshed one (or retry after a reload).
    correction = touchpoint(
        type="quote.given",
        source={"channel": "sales", "id": "q-fix"},
        customer={"email": EMAIL},
        data={"sku": "SKU-1", "price": money("17.90")},
        supersedes={"subjects": ["price:SKU-1"], "reason": "discount"},
    )
    second.record(correction)
    accepted = first.record(quote("17.90", "q-2"))
    assert accepted.customer_id == customer
    with pytest.raises(ConflictError):
        first.record(quote("19.90", "q-3"))


# -- snapshots --------------------------------------------------------------------------------


def test_a_long_stream_is_snapshotted_every_interval(
    snapshotting: Any, store_env: dict[str, str]
) -> None:
    hub = snapshotting(interval=5)
    customer = ""
    for i in range(12):
        customer = hub.record(call(f"c-{i}")).customer_id
    versions = sorted(row[0] for row in snapshot_rows(hub, store_env, customer))
    assert versions == [5, 10]


def test_a_customer_loaded_from_a_snapshot_equals_a_full_replay(snapshotting: Any) -> None:
    writer = snapshotting(interval=5)
    customer = writer.record(quote("19.90", "q-1")).customer_id
    for i in range(11):
        writer.record(call(f"c-{i}"))
    from_snapshot = snapshotting(interval=5).load_customers([customer])[customer]
    replayed = snapshotting(interval=0).load_customers([customer])[customer]
    assert from_snapshot.version == replayed.version == 13
    assert from_snapshot.state == replayed.state
    assert from_snapshot.state.claims["price:SKU-1"].value == money("19.90")
    assert (from_snapshot.merged_into, from_snapshot.merged_from, from_snapshot.erased) == (
        replayed.merged_into,
        replayed.merged_from,
        replayed.erased,
    )


def test_events_written_after_loading_a_snapshot_keep_the_chain(snapshotting: Any) -> None:
    writer = snapshotting(interval=5)
    for i in range(10):
        writer.record(call(f"c-{i}"))
    later = snapshotting(interval=5)  # nothing cached: loads from the snapshot at version 10
    later.record(call("c-10"))
    later.record(quote("19.90", "q-1"))
    report = later.verify()
    assert report.ok, report.as_dict()


def test_a_snapshot_keeps_no_personal_data_in_clear(
    snapshotting: Any, store_env: dict[str, str]
) -> None:
    hub = snapshotting(interval=5)
    customer = ""
    for i in range(5):
        customer = hub.record(call(f"c-{i}")).customer_id
    (row,) = snapshot_rows(hub, store_env, customer)
    stored = bytes(row[1])
    assert EMAIL.encode() not in stored and NAME.encode() not in stored


def test_erasure_deletes_the_snapshots_and_the_customer_still_loads_as_erased(
    snapshotting: Any, store_env: dict[str, str]
) -> None:
    hub = snapshotting(interval=5)
    customer = ""
    for i in range(7):
        customer = hub.record(call(f"c-{i}")).customer_id
    assert snapshot_rows(hub, store_env, customer)
    hub.erase(customer)
    assert snapshot_rows(hub, store_env, customer) == []
    fresh = snapshotting(interval=5)
    assert fresh.load_customers([customer])[customer].erased
    assert fresh.verify().ok


def test_the_batch_path_finds_the_newest_snapshot_of_each_stream(snapshotting: Any) -> None:
    hub = snapshotting(interval=5)
    customer = ""
    for i in range(12):
        customer = hub.record(call(f"c-{i}")).customer_id
    other = hub.record(call("o-1", email="someone.else@example.org")).customer_id
    found = hub.store.latest_snapshots([UUID(customer), UUID(other)])
    assert {str(stream): stored.originator_version for stream, stored in found.items()} == {
        customer: 10
    }


def test_merged_customers_snapshot_and_unmerge_as_a_full_replay_does(snapshotting: Any) -> None:
    hub = snapshotting(interval=2)
    a = hub.record(call("a-1")).customer_id
    b = hub.record(call("b-1", email="other.marta@example.org")).customer_id
    hub.merge(a, b)
    hub.record(call("a-2"))
    hub.unmerge(a, b)
    from_snapshots = snapshotting(interval=2).load_customers([a, b])
    replayed = snapshotting(interval=0).load_customers([a, b])
    for customer in (a, b):
        assert from_snapshots[customer].state == replayed[customer].state
        assert from_snapshots[customer].merged_from == replayed[customer].merged_from == []
        assert from_snapshots[customer].merged_into is replayed[customer].merged_into is None
    assert hub.verify().ok
