"""`POST /v1/touchpoints` without FastAPI's per-request machinery, for the plain case.

A channel posting single touchpoints is the hub's hottest request. FastAPI solves the route's
dependencies, builds a `Request`, validates the body and runs the exception handlers for
each one: about as much interpreter time as deciding the touchpoint (`bench/http.py`). This
middleware answers the request itself when it is the plain case: a JSON body that is a valid
envelope, `mode` absent, `live` or `record`, and a key admitted for the envelope's channel.
Anything else (bad JSON, an invalid envelope, a refused key, another content type or query)
goes on to the FastAPI route with the body as it came, so every refusal is FastAPI's own:
the same problem documents, status codes and metrics. The route stays the documented
contract (OpenAPI) and records through the same `record_single_answer`.

It runs before FastAPI and its whole middleware stack (`api.app.HubAPI`): each layer it skips
wraps every request and every message sent back (a fifth of the event loop's time per
touchpoint, `bench/http.py`; FastAPI's telemetry hooks, off unless configured, another 3 %),
and it sends its answer without building a `Response`. So it keeps the bounds of those layers
itself: only a body that declares its length within `HUB_MAX_BODY_BYTES` (anything else,
chunked uploads included, goes on to `BodyLimit`), read and recorded within
`HUB_REQUEST_TIMEOUT_S` (the same 503 problem as `RequestTimeout`), and an unexpected error
answered 500, logged, as `ServerErrorMiddleware` would.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from eventsourcing.persistence import OperationalError
from starlette.requests import cookie_parser
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import COOKIE, AccessDenied, identify, key_of, require_channel
from api.limits import refuse_timeout
from api.problems import hub_error_response
from api.routes.touchpoints import record_single_answer
from hub.envelope import Envelope, load_json, parse_envelope
from hub.errors import HubError, InvalidInput, StoreUnavailable

PATH = "/v1/touchpoints"
MODES = {b"": "live", b"mode=live": "live", b"mode=record": "record"}
log = logging.getLogger("hub.api")
JSON = (b"content-type", b"application/json")


class SingleTouchpoint:
    """Answers the plain `POST /v1/touchpoints`; hands every other request on unchanged."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope["query_string"] not in MODES
        ):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings = state.settings
        plain, key = _plain_key(scope, settings.max_body_bytes)
        if not plain:
            await self.app(scope, receive, send)
            return
        started = handed_on = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            async with asyncio.timeout(settings.request_timeout_s) as deadline:
                read = await _body(receive, settings.max_body_bytes)
                if read is None:  # the client went away before its body arrived
                    return
                body, more = read
                over = more or len(body) > settings.max_body_bytes
                envelope = None if over else self._plain(scope, body, key)
                if envelope is None:
                    handed_on = True  # the app answers, its own errors and limits included
                    await self.app(scope, _replay(body, more, receive), tracking_send)
                    return
                await self._record(scope, receive, tracking_send, envelope)
        except TimeoutError:
            if not deadline.expired():
                raise
            state.metrics.timeouts.inc()
            if not started:
                await refuse_timeout(send, settings.request_timeout_s)
        except Exception:
            if handed_on:
                raise  # answered (500) and logged by the app's ServerErrorMiddleware
            log.exception("POST %s failed", PATH)
            if not started:
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)

    async def _record(self, scope: Scope, receive: Receive, send: Send, envelope: Envelope) -> None:
        try:
            payload, status = await record_single_answer(
                scope["app"].state, envelope, MODES[scope["query_string"]]
            )
        except HubError as error:
            await hub_error_response(error)(scope, receive, send)
            return
        except OperationalError as error:  # as the app's handler answers it: 503, try again
            await hub_error_response(StoreUnavailable(str(error)))(scope, receive, send)
            return
        # The route's response (`json_response`) without building a Response for it.
        headers = [(b"content-length", str(len(payload)).encode()), JSON]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _plain(self, scope: Scope, body: bytes, key: str | None) -> Envelope | None:
        """The envelope, when the body is one and the caller may post it; else None."""
        try:
            envelope = parse_envelope(load_json(body))
        except (orjson.JSONDecodeError, InvalidInput):
            return None
        keys = scope["app"].state.hub.keys
        if not keys.remembers(key):
            return None  # a key not yet cached: the route reads the store off the loop
        try:
            principal = identify(keys, key)
            if not principal.admitted(("channel",)):
                return None
            require_channel(principal, [envelope.source.channel])
        except AccessDenied:
            return None
        return envelope


def _plain_key(scope: Scope, max_bytes: int) -> tuple[bool, str | None]:
    """Whether the request has a JSON body that declares a length within the limit, and the
    API key it presents (None: none). One pass over the headers; of a header given twice, the
    first counts, as in Starlette's `headers.get` (the route's reading)."""
    json: bool | None = None
    length: bool | None = None
    authorization: str | None = None
    api_key: str | None = None
    cookie: str | None = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if json is None:
                json = value.split(b";")[0].strip().lower() == b"application/json"
        elif name == b"content-length":
            if length is None:
                length = value.isdigit() and int(value) <= max_bytes
        elif name == b"transfer-encoding":
            return False, None
        elif name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            if api_key is None:
                api_key = value.decode("latin-1")
        elif name == b"cookie" and cookie is None:
            cookie = value.decode("latin-1")
    if not (json and length):
        return False, None
    return True, key_of(
        authorization or "",
        api_key,
        lambda: cookie_parser(cookie).get(COOKIE) if cookie else None,
    )


async def _body(receive: Receive, max_bytes: int) -> tuple[bytes, bool] | None:
    """The body, and whether more is to come: reading stops once it is over `max_bytes` (a
    client sending more than its declared length is left to the app's own limit)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
        if not more or size > max_bytes:
            return b"".join(chunks), more


def _replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A `receive` that gives the body already read (`more`: not all of it), then whatever the
    client sends next."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay
