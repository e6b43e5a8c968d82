"""What the NATS ingest and publish adapters share: the connection, their streams, and the
subjects of inbound touchpoints.

Channels publish to `<prefix>.<channel>`, or, to spread ingestion over several workers by
customer, to `<prefix>.<channel>.<partition>` with `partition_of(key, N)`: each partition is
taken by one `hub ingest nats` worker of its own (`HUB_NATS_PARTITIONS=N`,
`HUB_NATS_PARTITION=p`), so a customer's touchpoints are decided in the order published, by
one worker, whose cache holds that customer. For that the key must be one per customer that
every channel knows (the hub's customer id, a CRM id); `partition_key(envelope)`, the first
identity an envelope gives, is the fallback. A touchpoint keyed differently from the rest of
its customer's (a call that knows only the phone number, say) is still decided correctly,
against the store, only not in order with the other partition's.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

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


def channel_of(subject: str, prefix: str) -> str:
    """The channel a touchpoint came on: the token after the prefix, partitioned or not."""
    return subject[len(prefix) + 1 :].split(".", 1)[0]


def inbound_subjects(prefix: str, rejected_prefix: str, partitioned: bool = True) -> list[str]:
    """The subjects of the inbound stream: touchpoints (`partitioned`: with a partition token
    or without), and the rejected ones (inside `<prefix>.*.*` when their prefix is
    `<prefix>.<word>`). Unpartitioned, a publish to a partition has no stream to take it and
    fails at the publisher, instead of waiting for a worker that is not configured."""
    subjects = [f"{prefix}.*", f"{prefix}.*.*"] if partitioned else [f"{prefix}.*"]
    rejected = f"{rejected_prefix}.*"
    return subjects if any(covers(s, rejected) for s in subjects) else [*subjects, rejected]


def covers(pattern: str, subject: str) -> bool:
    """Whether every subject `subject` matches also matches `pattern` (NATS wildcards)."""
    wanted, given = pattern.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(given) > i
        if i >= len(given) or given[i] == ">" or (token != "*" and token != given[i]):
            return False
    return len(wanted) == len(given)


def partition_key(envelope: Mapping[str, Any]) -> str:
    """What a publisher partitions a touchpoint by: the first of its customer's id, email,
    phone (digits only) or account that it gives (the hub's normalisation is not needed, only
    the same key for the same customer)."""
    customer = envelope.get("customer") or {}
    if customer.get("id"):
        return f"id:{str(customer['id']).lower()}"
    if customer.get("email"):
        return f"email:{str(customer['email']).strip().lower()}"
    if customer.get("phone"):
        return "phone:" + "".join(c for c in str(customer["phone"]) if c.isdigit())
    return f"account:{str(customer.get('account') or '').strip().lower()}"


def partition_of(key: str, partitions: int) -> int:
    """The partition of a key: the first 8 bytes of its SHA-256, modulo `partitions` (any
    language computes the same)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % partitions


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: Sequence[str],
    duplicate_window: float,
    max_age: float | None = None,
) -> None:
    """Create the stream unless it exists; an existing one missing some of `subjects` gets
    them (in place of the subjects they cover), the rest of its config left as it is."""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        info = None
    if info is not None:
        have = list(info.config.subjects or [])
        missing = [w for w in subjects if not any(covers(h, w) for h in have)]
        if not missing:
            return  # every subject wanted is the stream's already (or inside a wider one)
        kept = [h for h in have if not any(covers(w, h) for w in missing)]
        log.info("adding subjects %s to JetStream stream %s", ", ".join(missing), name)
        info.config.subjects = [*kept, *missing]
        try:
            await js.update_stream(info.config)
        except Exception as error:  # e.g. another stream holds some of them: go on without
            log.warning(
                "could not add %s to JetStream stream %s (%s); going on with %s",
                ", ".join(missing),
                name,
                error,
                ", ".join(have),
            )
        return
    log.info("creating JetStream stream %s for %s", name, ", ".join(subjects))
    await js.add_stream(
        StreamConfig(
            name=name,
            subjects=list(subjects),
            duplicate_window=duplicate_window,
            max_age=max_age,
        )
    )
