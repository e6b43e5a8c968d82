"""Group commit on both stores: concurrent single touchpoints share transactions, and every
caller still gets exactly the outcome it would have got alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hub.app import Accepted, Hub
from hub.envelope import Envelope
from hub.errors import ConflictError, HubError, InvalidInput, StoreUnavailable
from hub.group_commit import GroupCommit
from tests.factories import money, touchpoint


@pytest.fixture
def group(hub: Hub) -> Iterator[GroupCommit]:
    committer = GroupCommit(hub, max_wait=0.02)
    yield committer
    committer.close()


def at_once(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Run `call(i)` on `count` threads released together; each result or raised error."""
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call(i)
        except HubError as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_touchpoints_share_transactions_and_each_gets_its_own_result(
    hub: Hub, group: GroupCommit
) -> None:
    results = at_once(
        40, lambda i: group.record(touchpoint(customer={"email": f"c{i}@example.com"}))
    )
    assert all(isinstance(r, Accepted) and not r.duplicate for r in results)
    assert len({r.customer_id for r in results}) == 40
    assert len({r.position for r in results}) == 40
    assert group.batches < 40  # gathered, not one transaction each
    assert hub.recorder.max_notification_id() == 80  # registration + touchpoint each


def test_contradicting_quotes_in_one_group_accept_exactly_one(hub: Hub, group: GroupCommit) -> None:
    customer = hub.record(touchpoint()).customer_id

    def quote(i: int) -> Accepted:
        return group.record(
            touchpoint(
                customer={"id": customer},
                type="quote.given",
                source={"channel": "sales", "id": f"q-{i}"},
                data={"sku": "SKU-1", "price": money(f"{10 + i}.00")},
            )
        )

    results = at_once(20, quote)
    assert sum(isinstance(r, Accepted) for r in results) == 1
    assert sum(isinstance(r, ConflictError) for r in results) == 19


def test_one_source_key_from_many_callers_is_recorded_once(hub: Hub, group: GroupCommit) -> None:
    same = touchpoint(source={"channel": "phone", "id": "call-once"})
    results = at_once(10, lambda i: group.record(same))
    assert [r.duplicate for r in results].count(False) == 1
    assert len({r.position for r in results}) == 1
    assert hub.recorder.max_notification_id() == 2


def test_a_bad_touchpoint_fails_alone(hub: Hub, group: GroupCommit) -> None:
    good = group.submit(touchpoint(customer={"email": "good@example.com"}))
    bad = group.submit(touchpoint(source={"channel": "pigeon", "id": "p-1"}))
    assert isinstance(good.result(), Accepted)
    with pytest.raises(InvalidInput):
        bad.result()


def test_close_finishes_what_was_queued(hub: Hub) -> None:
    committer = GroupCommit(hub, max_wait=0.05)
    futures = [
        committer.submit(touchpoint(customer={"email": f"q{i}@example.com"})) for i in range(5)
    ]
    committer.close()
    assert all(isinstance(f.result(timeout=0), Accepted) for f in futures)


def test_callers_on_a_loop_share_transactions_and_each_gets_its_own_outcome(
    hub: Hub, group: GroupCommit
) -> None:
    customer = hub.record(touchpoint()).customer_id

    def quote(i: int) -> Envelope:
        return touchpoint(
            customer={"id": customer},
            type="quote.given",
            source={"channel": "sales", "id": f"q-{i}"},
            data={"sku": "SKU-1", "price": money(f"{10 + i}.00")},
        )

    async def post_all() -> list[Any]:
        emails = [f"a{i}@example.com" for i in range(30)]
        calls = [group.submit_async(touchpoint(customer={"email": e})) for e in emails]
        calls += [group.submit_async(quote(i)) for i in range(10)]
        return await asyncio.gather(*calls, return_exceptions=True)

    before = group.batches
    results = asyncio.run(post_all())
    accepted, quotes = results[:30], results[30:]
    assert all(isinstance(r, Accepted) and not r.duplicate for r in accepted)
    assert len({r.customer_id for r in accepted}) == 30
    assert sum(isinstance(r, Accepted) for r in quotes) == 1
    assert sum(isinstance(r, ConflictError) for r in quotes) == 9
    assert group.batches - before < 40  # gathered, not one transaction each


def test_a_caller_that_gives_up_still_has_its_touchpoint_committed(
    hub: Hub, group: GroupCommit
) -> None:
    async def give_up_then_post_again() -> tuple[bool, Accepted]:
        first = group.submit_async(touchpoint(source={"channel": "phone", "id": "call-late"}))
        first.cancel()  # as a request that timed out: the writer must not trip over it
        await asyncio.sleep(0.1)
        again = await group.submit_async(touchpoint(source={"channel": "phone", "id": "call-late"}))
        return first.cancelled(), again

    cancelled, again = asyncio.run(give_up_then_post_again())
    assert cancelled
    assert again.duplicate  # the first one committed all the same
    after = group.record(touchpoint(source={"channel": "phone", "id": "call-next"}))
    assert not after.duplicate  # and the writer goes on


def test_an_async_caller_after_close_hears_the_hub_is_stopping(hub: Hub) -> None:
    committer = GroupCommit(hub)
    committer.close()

    async def post() -> None:
        await committer.submit_async(touchpoint())

    with pytest.raises(StoreUnavailable):
        asyncio.run(post())
