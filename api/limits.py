"""Bounds on a request: its body size (413 problem), its time (503 problem), and how long a
connection may dribble its headers before uvicorn drops it (slow-loris clients).

A touchpoint's body is read whole before any store work, so a slow client only ever holds
its own coroutine, never the group-commit writer or a store connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.problems import PROBLEM, problem_type


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Counts body bytes as they arrive, so chunked uploads are bounded too."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await _send_problem(
            send,
            413,
            "body-too-large",
            "Request body too large",
            f"the body is over {self.max_bytes} bytes",
        )


async def _send_problem(
    send: Send,
    status: int,
    kind: str,
    title: str,
    detail: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body: dict[str, Any] = {
        "type": problem_type(kind),
        "title": title,
        "status": status,
        "detail": detail,
    }
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestTimeout:
    """Answers 503 (problem, Retry-After) for a request not done within `seconds`, slow body
    uploads included. A write cut off here may still commit: its retry is then a duplicate."""

    def __init__(self, app: ASGIApp, seconds: float, on_timeout: Callable[[], None]):
        self.app = app
        self.seconds = seconds
        self.on_timeout = on_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with asyncio.timeout(self.seconds) as deadline:
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if not deadline.expired():
                raise
            self.on_timeout()
            if not started:
                await refuse_timeout(send, self.seconds)


async def refuse_timeout(send: Send, seconds: float) -> None:
    """The 503 problem of a request not done within `seconds`."""
    await _send_problem(
        send,
        503,
        "request-timeout",
        "Request timed out",
        f"not done within {seconds:g} s; try again",
        [(b"retry-after", b"1")],
    )


class SlowClientGuard(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools' parser), closing a connection whose request
    headers have not all arrived within `header_timeout` s of connecting or of its previous
    answer.

    One timer per connection, pushed back when it fires early, rather than a timer re-armed
    on every answer (3 % of the event loop's time per touchpoint, `bench/http.py`): an answer
    only notes when it was sent."""

    header_timeout = 10.0
    _idle_since = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self.loop.call_later(self.header_timeout, self._drop_if_idle)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._idle_since = self.loop.time()

    def _drop_if_idle(self) -> None:
        if self.transport.is_closing():
            return
        waiting_for_headers = self.cycle is None or self.cycle.response_complete
        due = self._idle_since + self.header_timeout if waiting_for_headers else None
        now = self.loop.time()
        if due is not None and now >= due:
            self.transport.close()
            return
        # Answered since, or a request in flight (checked again a full timeout later).
        later = self.header_timeout if due is None else due - now
        self.loop.call_later(later, self._drop_if_idle)


def slow_client_guard(header_timeout: float) -> type[SlowClientGuard]:
    """The protocol class for `uvicorn.run(http=...)` with this header timeout."""
    return type("SlowClientGuard", (SlowClientGuard,), {"header_timeout": header_timeout})
