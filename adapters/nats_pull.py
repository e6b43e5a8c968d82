"""Fetching batches from a JetStream pull consumer, without a wait per message.

nats-py's `PullSubscription.fetch` awaits each message of a batch with a timeout of its own:
a task and a timer a message. Fetching and acking 50,000 waiting messages alone took 25-32 µs
of CPU a message that way, against 13-16 µs here (`bench/nats_ingest.py`'s machine, measured
side by side); in `hub ingest nats` that is a sixth of a message's cost. The protocol is the
library's: a pull request (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`) answered on an
inbox, first without waiting, then, when nothing was there, lingering until messages come
(`LINGER_S` after the first) or the request expires.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

NO_MESSAGES = {"404", "408"}  # none waiting; the request expired
# Not an answer: a heartbeat; and 409, the request dropped for now (consumer deleted, too many
# waiting), after which the fetch waits out its time as nats-py's does. Recreating a consumer
# at once on "409 Consumer Deleted", while the server was still deleting its stream, left a
# consumer that answered every pull with 408 and delivered nothing (seen 1 run in 3 of
# `test_lost_stream_and_consumer_are_recreated`).
IGNORED = {"100", "409"}
LINGER_S = 0.02  # a lingering request that got messages returns this long after the first:
# a quiet channel's touchpoint is recorded at once, not when the batch fills or the request
# expires (the rest of the request stays open; what it delivers later waits in the buffer)
GRACE_S = 0.5  # how long to wait for the server to end a request it should end by itself:
# a no-wait one at once (404 or the batch), a lingering one at its expiry (408). A request
# to a consumer that does not exist is never answered (JetStream drops it): a no-wait request
# unanswered this long means the consumer is gone.


class PullRefused(Exception):
    """The server answered a pull request with an error status (503: nobody listens)."""

    def __init__(self, status: str, description: str):
        super().__init__(f"pull request refused: {status} {description}".strip())
        self.status = status


class Puller:
    """Pulls batches of a durable consumer onto one inbox.

    Every message delivered to the inbox lands in `buffer`, whichever request it answers, so a
    late delivery (a request outlived on the client's side) is handed out by the next fetch,
    never dropped; `fetch` returns when its request is filled, the server ends it, or (when
    it lingers) `LINGER_S` after its first message.
    """

    def __init__(self, nc: Client, stream: str, consumer: str):
        self.nc = nc
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.inbox = nc.new_inbox()
        self.buffer: list[Msg] = []
        self._sub: Subscription | None = None
        self._wanted = 0
        self._ended: asyncio.Future[Msg | None] | None = None
        self._linger: float | None = None  # of the pull waiting now

    async def start(self) -> None:
        if self._sub is None:
            self._sub = await self.nc.subscribe(self.inbox, cb=self._arrived)

    async def stop(self) -> list[Msg]:
        """Stop listening; the messages delivered but not yet handed out (to be nak'd)."""
        if self._sub is not None:
            with suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        left, self.buffer = self.buffer, []
        return left

    async def _arrived(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status in IGNORED:
            return
        ended = self._ended
        if ended is None or ended.done():
            if status is None:
                self.buffer.append(msg)
            return
        if status is not None:
            ended.set_result(msg)
            return
        self.buffer.append(msg)
        if len(self.buffer) >= self._wanted:
            ended.set_result(None)
        elif self._linger is not None:
            asyncio.get_running_loop().call_later(self._linger, _end, ended)
            self._linger = None

    async def fetch(self, batch: int, timeout: float) -> list[Msg]:
        """Up to `batch` messages: those waiting now; when none were, the ones that come
        within `timeout` (handed out `LINGER_S` after the first). Raises TimeoutError when
        none came, or at once when the no-wait request went unanswered (the consumer is
        gone); PullRefused on an error status."""
        got, answered = await self._pull(batch, {"no_wait": True}, min(timeout, GRACE_S))
        if not got and answered:
            request = {"expires": int(timeout * 1e9)}
            got, _ = await self._pull(batch, request, timeout + GRACE_S, LINGER_S)
        if not got:
            raise TimeoutError
        return got

    async def _pull(
        self,
        batch: int,
        request: dict[str, int | bool],
        wait: float,
        linger: float | None = None,
    ) -> tuple[list[Msg], bool]:
        """Ask for what the buffer lacks of `batch`, wait until it is there, the server ended
        the request or `linger` passed since its first message; up to `batch` of the buffer,
        and whether the server answered."""
        missing = batch - len(self.buffer)
        answered = True
        if missing > 0:
            self._wanted, self._linger = batch, linger
            self._ended = asyncio.get_running_loop().create_future()
            body = orjson.dumps({"batch": missing, **request})
            await self.nc.publish(self.subject, body, reply=self.inbox)
            try:
                status = await asyncio.wait_for(self._ended, wait)
            except TimeoutError:
                status, answered = None, bool(self.buffer)
            finally:
                self._ended = None
            if status is not None and status.headers is not None:
                code = status.headers.get("Status", "")
                if code not in NO_MESSAGES:
                    raise PullRefused(code, status.headers.get("Description", ""))
        got, self.buffer = self.buffer[:batch], self.buffer[batch:]
        return got, answered


def _end(ended: asyncio.Future[Msg | None]) -> None:
    if not ended.done():
        ended.set_result(None)
