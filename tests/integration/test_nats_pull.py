"""`Puller`, the batch fetch of `hub ingest nats`, against the real nats-server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from adapters.nats_pull import Puller, PullRefused

pytestmark = pytest.mark.nats


async def with_consumer(nats_url: str, body: Callable[[Any, str, Puller], Awaitable[None]]) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    tag = uuid.uuid4().hex[:10]
    stream, subject = f"PULL_{tag}", f"pull{tag}.in"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"pull{tag}.*"]))
    await js.add_consumer(stream, ConsumerConfig(durable_name="d", ack_policy=AckPolicy.EXPLICIT))
    puller = Puller(nc, stream, "d")
    await puller.start()
    try:
        await body(js, subject, puller)
    finally:
        await puller.stop()
        await js.delete_stream(stream)
        await nc.close()


async def published(js: Any, subject: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await js.publish(subject, f"m{i}".encode())


def run(nats_url: str, body: Callable[[Any, str, Puller], Awaitable[None]]) -> None:
    asyncio.run(with_consumer(nats_url, body))


def test_waiting_messages_come_at_once_in_order_and_batches(nats_url: str) -> None:
    async def body(js: Any, subject: str, puller: Puller) -> None:
        await published(js, subject, 7)
        started = time.monotonic()
        first = await puller.fetch(5, timeout=5.0)
        rest = await puller.fetch(5, timeout=5.0)
        # Fewer waiting than asked: answered without waiting out the 5 s.
        assert time.monotonic() - started < 1.0
        assert [m.data for m in first] == [f"m{i}".encode() for i in range(5)]
        assert [m.data for m in rest] == [b"m5", b"m6"]
        assert [m.metadata.num_pending for m in (first[-1], rest[-1])] == [2, 0]
        for msg in first + rest:
            await msg.ack()

    run(nats_url, body)


def test_an_empty_consumer_lingers_for_what_comes_then_times_out(nats_url: str) -> None:
    async def body(js: Any, subject: str, puller: Puller) -> None:
        started = time.monotonic()
        fetching = asyncio.ensure_future(puller.fetch(500, timeout=2.0))
        await asyncio.sleep(0.3)
        await published(js, subject, 1)
        got = await fetching
        # Handed out as it came, not when the 2 s request expired or the batch filled.
        assert time.monotonic() - started < 1.0
        assert [m.data for m in got] == [b"m0"]
        await got[0].ack()
        # The rest of that request is still open: what it delivers waits in the buffer.
        await published(js, subject, 2, start=1)
        got = await puller.fetch(500, timeout=2.0)
        while len(got) < 2:
            got += await puller.fetch(500, timeout=2.0)
        assert [m.data for m in got] == [b"m1", b"m2"]
        for msg in got:
            await msg.ack()
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await puller.fetch(3, timeout=0.5)
        assert 0.4 < time.monotonic() - started < 2.0

    run(nats_url, body)


def test_a_missing_consumer_times_out_and_a_refusal_raises(nats_url: str) -> None:
    async def body(js: Any, subject: str, puller: Puller) -> None:
        gone = Puller(puller.nc, "NO_SUCH_STREAM", "d")
        await gone.start()
        try:
            # JetStream drops a pull request for a consumer it does not have: no answer to
            # the no-wait request, so no lingering one after it.
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await gone.fetch(3, timeout=5.0)
            assert time.monotonic() - started < 1.5
            # A subject nobody listens on is answered 503 (no responders): raised at once.
            gone.subject = f"nobody.{uuid.uuid4().hex}"
            started = time.monotonic()
            with pytest.raises(PullRefused) as refused:
                await gone.fetch(3, timeout=5.0)
            assert refused.value.status == "503"
            assert time.monotonic() - started < 1.0
        finally:
            await gone.stop()

    run(nats_url, body)


def test_messages_delivered_late_are_handed_out_first_or_returned_by_stop(
    nats_url: str,
) -> None:
    async def body(js: Any, subject: str, puller: Puller) -> None:
        # A request left outstanding on the server (as after a client-side time-out)
        # delivers into the buffer; the next fetches hand those out first.
        await puller.nc.publish(
            puller.subject, b'{"batch": 4, "expires": 5000000000}', reply=puller.inbox
        )
        await published(js, subject, 4)
        await puller.nc.flush()
        deadline = time.monotonic() + 5
        while len(puller.buffer) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        got = await puller.fetch(2, timeout=1.0)
        assert [m.data for m in got] == [b"m0", b"m1"]
        # Two still in the buffer: a fetch of three asks the server for one more only.
        await published(js, subject, 3, start=4)
        got = await puller.fetch(3, timeout=1.0)
        assert [m.data for m in got] == [b"m2", b"m3", b"m4"]
        stream = puller.subject.split(".")[-2]
        assert (await js.consumer_info(stream, "d")).num_pending == 2
        got = await puller.fetch(3, timeout=1.0)
        assert [m.data for m in got] == [b"m5", b"m6"]
        # What is delivered but never handed out is returned by stop (to be nak'd).
        await puller.nc.publish(
            puller.subject, b'{"batch": 1, "expires": 5000000000}', reply=puller.inbox
        )
        await published(js, subject, 1, start=7)
        while not puller.buffer and time.monotonic() < deadline + 5:
            await asyncio.sleep(0.02)
        assert [m.data for m in await puller.stop()] == [b"m7"]

    run(nats_url, body)
