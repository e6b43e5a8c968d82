"""What the NATS ingest and publish adapters share: the connection and their streams."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from hub.settings import Settings

log = logging.getLogger(__name__)


async def connect(settings: Settings, name: str, on_reconnect: list[bool] | None = None) -> Client:
    """A client that reconnects for ever; `on_reconnect[0]` is set after each reconnect so the
    owner checks its stream and consumer (JetStream state may have been lost meanwhile)."""

    async def reconnected() -> None:
        log.warning("%s: reconnected to NATS", name)
        if on_reconnect is not None:
            on_reconnect[0] = True

    async def disconnected() -> None:
        log.info("%s: disconnected from NATS", name)

    async def error(exc: Exception) -> None:
        log.warning("%s: NATS error: %s", name, exc)

    return await nats.connect(
        settings.nats_url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        reconnected_cb=reconnected,
        disconnected_cb=disconnected,
        error_cb=error,
    )


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: Sequence[str],
    duplicate_window: float,
    max_age: float | None = None,
) -> None:
    """Create the stream unless it exists (an existing stream's config is left as it is)."""
    try:
        await js.stream_info(name)
        return
    except NotFoundError:
        pass
    log.info("creating JetStream stream %s for %s", name, ", ".join(subjects))
    await js.add_stream(
        StreamConfig(
            name=name,
            subjects=list(subjects),
            duplicate_window=duplicate_window,
            max_age=max_age,
        )
    )
