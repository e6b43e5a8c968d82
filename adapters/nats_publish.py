"""Outbound events: every recorded event published to `hub.events.<type>` in notification-log
order, for other systems.

Each message carries `Nats-Msg-Id` and `Hub-Position` (its position in the log) and is
published with `Nats-Expected-Last-Sequence`, so the stream refuses anything out of order:
if one publish of a pipelined page fails, the ones after it fail too. The position is tracked
in the hub's database (the library's tracking recorder, under its own name) after the
stream acked it; a restart resumes after the later of the tracked position and the position
of the stream's last message, so a crash between publish and tracking neither loses nor
repeats an event (and `Nats-Msg-Id` drops a repeat inside the duplicate window anyway).
One publisher per events stream is the design; a second one is fenced off by the expected
sequence and only wastes work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import orjson
from eventsourcing.persistence import Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import Header
from nats.js.errors import NotFoundError

from adapters.nats_streams import connect, ensure_stream
from hub.app import Hub
from hub.settings import Settings
from hub.store import creating_tables
from projections.base import Event, decode

log = logging.getLogger(__name__)
POSITION_HEADER = "Hub-Position"
RETRY_S = 1.0

# Subject names of the events that are not touchpoints (touchpoints use their wire type).
EVENT_TYPES = {
    "registered": "customer.registered",
    "merged_into": "customer.merged",
    "absorbed": "customer.absorbed",
    "unmerged": "customer.unmerged",
    "released": "customer.released",
    "erased": "customer.erased",
    "rejected": "touchpoint.rejected",
    "suggested": "customer.merge_suggested",
}


def event_type(event: Event) -> str:
    """The dotted type an event is published under: `quote.given`, `customer.merged`…"""
    return event.type if event.kind == "touchpoint" and event.type else EVENT_TYPES[event.kind]


def event_message(event: Event) -> dict[str, Any]:
    """The published document: where the event sits in the log, and the event itself."""
    return {
        "position": event.position,
        "type": event_type(event),
        "stream_id": event.stream,
        "version": event.version,
        "recorded_at": event.recorded_at,
        "event": event.doc,
    }


def tracking_recorder(hub: Hub) -> TrackingRecorder:
    """The library's tracking recorder on the hub's own database (PostgreSQL: a table of its
    own, `<app>_nats_tracking`; SQLite: the library's `tracking` table, under its own name)."""
    datastore = hub.recorder.datastore  # type: ignore[attr-defined]
    recorder: TrackingRecorder
    if isinstance(datastore, PostgresDatastore):
        prefix = getattr(hub.recorder, "events_table_name", "hub_events").removesuffix("_events")
        recorder = PostgresTrackingRecorder(
            datastore, tracking_table_name=f"{prefix}_nats_tracking"
        )
    else:
        recorder = SQLiteTrackingRecorder(datastore)
    # Under the hub's schema lock: roles starting together race on the CREATE statements
    # and the library's migration row ("Failed to record tracking for __migration__").
    with creating_tables(hub.recorder):
        recorder.create_table()  # type: ignore[attr-defined]
    return recorder


@dataclass
class PublishStats:
    published: int = 0
    pages: int = 0
    resyncs: int = 0


class NatsPublisher:
    """The loop of `hub publish nats`: read a page of the log, publish it, track it."""

    def __init__(self, hub: Hub, settings: Settings):
        self.hub = hub
        self.settings = settings
        self.name = f"{settings.nats_publisher}:{settings.nats_events_stream}"
        self.tracking = tracking_recorder(hub)
        self.stats = PublishStats()
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.position = 0  # the last position known to be in the stream (or tracked)
        self.tracked = 0
        self.last_seq = 0  # the stream's last sequence, when `position` was read
        self._reconnected = [False]
        self._synced = False

    async def start(self) -> None:
        self.nc = await connect(self.settings, "hub-publish", self._reconnected)
        self.js = self.nc.jetstream()
        await self._sync()

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()

    async def _sync(self) -> None:
        """Where to go on: after the tracked position or the stream's last event, the later."""
        assert self.js is not None
        s = self.settings
        await ensure_stream(
            self.js,
            s.nats_events_stream,
            [f"{s.nats_events_prefix}.>"],
            s.nats_duplicate_window_s,
            s.nats_events_max_age_s,
        )
        info = await self.js.stream_info(s.nats_events_stream)
        self.last_seq = info.state.last_seq
        in_stream = 0
        if self.last_seq:
            try:
                last = await self.js.get_msg(s.nats_events_stream, self.last_seq)
                in_stream = int((last.headers or {}).get(POSITION_HEADER, 0))
            except (NotFoundError, ValueError):
                in_stream = 0  # purged or foreign: trust the tracking
        tracked = await asyncio.to_thread(self.tracking.max_tracking_id, self.name)
        self.tracked = tracked or 0
        self.position = max(self.tracked, in_stream)
        self._synced = True
        self._reconnected[0] = False

    async def run(self, stop: asyncio.Event) -> PublishStats:
        """Publish until `stop` is set; a page being published is finished and tracked."""
        if self.nc is None:
            await self.start()
        try:
            while not stop.is_set():
                try:
                    if not self._synced or self._reconnected[0]:
                        await self._sync()
                    count = await self.publish_page()
                except Exception as error:
                    log.warning("publishing failed (retrying): %r", error)
                    self._synced = False
                    count = 0
                    await _wait(stop, RETRY_S)
                    continue
                if count == 0:
                    await _wait(stop, self.settings.nats_poll_s)
        finally:
            await self.close()
        return self.stats

    async def publish_page(self) -> int:
        """Publish the next page of the log; how many notifications it moved past."""
        page = self.settings.nats_batch_size
        notifications = await asyncio.to_thread(
            self.hub.recorder.select_notifications, self.position + 1, page
        )
        if not notifications:
            return 0
        events = await asyncio.to_thread(decode, notifications, self.hub.shredder)
        done = await self._publish(events)
        if done == len(events):
            self.position = notifications[-1].id  # past events that are not published too
        else:
            self._synced = False  # the stream refused one: read where it stands
            if done:
                self.position = events[done - 1].position
        if self.position > self.tracked:
            await asyncio.to_thread(
                self.tracking.insert_tracking, Tracking(self.name, self.position)
            )
            self.tracked = self.position
        self.stats.pages += 1
        self.stats.published += done
        if done < len(events):
            self.stats.resyncs += 1
            raise RuntimeError(f"the events stream took {done} of {len(events)} events")
        return len(notifications)

    async def _publish(self, events: Sequence[Event]) -> int:
        """Publish pipelined, each expecting the one before it; how many went in, in order."""
        assert self.js is not None
        prefix = self.settings.nats_events_prefix
        futures = []
        for offset, event in enumerate(events):
            headers = {
                Header.MSG_ID.value: str(event.position),
                POSITION_HEADER: str(event.position),
            }
            if self.last_seq + offset:
                headers[Header.EXPECTED_LAST_SEQUENCE.value] = str(self.last_seq + offset)
            futures.append(
                await self.js.publish_async(
                    f"{prefix}.{event_type(event)}",
                    orjson.dumps(event_message(event)),
                    headers=headers,
                )
            )
        acks = await asyncio.gather(*futures, return_exceptions=True)
        done = 0
        for ack in acks:
            if isinstance(ack, BaseException):
                log.warning("the events stream refused an event: %r", ack)
                break
            if ack.duplicate:
                break  # already in the stream: the sequence did not move, resync
            done += 1
            self.last_seq = ack.seq
        return done


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
