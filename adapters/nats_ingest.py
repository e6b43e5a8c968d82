"""NATS JetStream ingestion: channels publish envelopes to `touchpoints.<channel>`; a durable
pull consumer records them a fetched batch per transaction and acks only after the commit.

- Publishers set `Nats-Msg-Id` to the source key: the stream drops a re-send inside its
  duplicate window, the hub (idempotent by source key) one outside it, and a redelivery.
- A message that can never be recorded (not JSON, an invalid envelope, a conflict, ambiguous
  identities) is republished with its problem document to `touchpoints.rejected.<channel>`
  and terminated; the rest of its batch still commits.
- The store being down is transient: the batch is nak'd with exponential back-off.
- Several processes may share the durable consumer; each one's batches commit in order.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, Header
from nats.js.errors import NotFoundError

from adapters.nats_pull import Puller
from adapters.nats_streams import channel_of, connect, ensure_stream, inbound_subjects
from hub.app import Accepted, Hub, Outcome
from hub.collect import collect_if_due, few_collections
from hub.envelope import load_json, parse_envelope
from hub.errors import HubError, InvalidInput, StoreUnavailable
from hub.settings import Settings

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S = 1.0
CHECK_EVERY_S = 5.0  # how often an idle consumer makes sure its consumer still exists
POISON_AFTER = 5  # deliveries after which a message that crashes the hub is rejected


class InternalFailure(HubError):
    """The hub failed on this message again and again: set aside for a person to look at."""

    status = 500
    kind = "internal-error"
    title = "The hub could not record this message"


@dataclass
class IngestStats:
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    retried: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def problem_message(msg: Msg, error: HubError) -> bytes:
    """The rejected subject's payload: the problem document beside the message as it came."""
    doc: dict[str, Any] = {"subject": msg.subject, "problem": error.problem()}
    with suppress(Exception):
        doc["sequence"] = msg.metadata.sequence.stream
    try:
        doc["message"] = msg.data.decode()
    except UnicodeDecodeError:
        doc["message_base64"] = base64.b64encode(msg.data).decode()
    return orjson.dumps(doc)


def consumer_of(settings: Settings) -> tuple[str, str]:
    """The subjects a worker takes and the durable consumer it shares: a partition's worker
    takes `<prefix>.<channel>.<N>` with a consumer of its own (`partition_durable`); the
    others share the consumer of the unpartitioned `<prefix>.<channel>`."""
    prefix, partition = settings.nats_subject_prefix, settings.nats_partition
    if partition is None:
        return f"{prefix}.*", settings.nats_durable
    return f"{prefix}.*.{partition}", partition_durable(settings.nats_durable, partition)


def partition_durable(durable: str, partition: int) -> str:
    """The durable consumer of one partition's worker."""
    return f"{durable}-p{partition}"


class NatsIngest:
    """The consumer loop of `hub ingest nats`: fetch, record in a worker thread, settle."""

    def __init__(self, hub: Hub, settings: Settings, *, check_every: float = CHECK_EVERY_S):
        self.hub = hub
        self.settings = settings
        self.prefix = settings.nats_subject_prefix
        self.filter_subject, self.durable = consumer_of(settings)
        self.check_every = check_every
        self.stats = IngestStats()
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        # `sub` creates or binds the durable consumer and reads its info; `puller` fetches.
        self.sub: JetStreamContext.PullSubscription | None = None
        self.puller: Puller | None = None
        self._reconnected = [False]
        self._checked = 0.0
        # The consumer's lag as the last fetched message carried it (JetStream puts the count
        # still pending in each message's reply subject), and when that fetch returned: the
        # metrics read it there while messages flow, not from a consumer-info request.
        self.pending: int | None = None
        self.fetched_at = 0.0
        # Told of each recorded batch (the messages' channels, outcomes, seconds): `hub ingest
        # nats` counts them in its metrics.
        self.on_batch: Callable[[list[str], Sequence[Outcome], float], None] | None = None

    # -- setting up ------------------------------------------------------------------------

    async def start(self) -> None:
        self.nc = await connect(self.settings, "hub-ingest", self._reconnected)
        self.js = self.nc.jetstream()
        await self._subscribe()

    async def _subscribe(self) -> None:
        """(Re)create the stream and the durable consumer if missing, and bind to it."""
        assert self.js is not None
        s = self.settings
        await ensure_stream(
            self.js,
            s.nats_stream,
            inbound_subjects(self.prefix, s.nats_rejected_prefix, s.nats_partitions > 0),
            s.nats_duplicate_window_s,
        )
        if self.sub is not None:
            with suppress(Exception):
                await self.sub.unsubscribe()
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=s.nats_ack_wait_s,
            max_deliver=-1,  # the store may be down for long: never drop a message
            max_ack_pending=max(1000, s.nats_batch_size * 8),
            filter_subject=self.filter_subject,
        )
        self.sub = await self.js.pull_subscribe(
            self.filter_subject, durable=self.durable, stream=s.nats_stream, config=config
        )
        if self.puller is None:
            assert self.nc is not None
            self.puller = Puller(self.nc, s.nats_stream, self.durable)
            await self.puller.start()
        self._checked = time.monotonic()

    async def _check(self) -> None:
        """After a reconnect or a quiet while: recreate what JetStream lost (a server restarted
        without its store keeps answering, but the consumer is gone and fetches just time out)."""
        if not self._reconnected[0] and time.monotonic() - self._checked < self.check_every:
            return
        self._reconnected[0] = False
        assert self.sub is not None
        try:
            await self.sub.consumer_info()
            self._checked = time.monotonic()
        except NotFoundError:
            log.warning("JetStream lost the stream or consumer: recreating them")
            await self._subscribe()

    # -- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> IngestStats:
        """Consume until `stop` is set; the batch being recorded then is finished and settled."""
        if self.sub is None:
            await self.start()
        fetching = asyncio.ensure_future(self._fetch())
        try:
            # No cyclic collections between batches either: the messages, tasks and acks of
            # the loop die by reference counting, and each collection the loop's allocations
            # set off walked the whole customer cache (15 % of the wall time, measured). A
            # full collection still runs every `COLLECT_EVERY_S`, busy or idle (a fetch
            # returns within FETCH_TIMEOUT_S).
            with few_collections():
                while True:
                    collect_if_due()
                    msgs = await fetching
                    if stop.is_set():
                        await self._release(msgs)
                        break
                    # Fetch the next batch while this one is decided and committed.
                    fetching = asyncio.ensure_future(self._fetch())
                    if msgs:
                        await self.process(msgs)
        finally:
            if not fetching.done():
                fetching.cancel()
            await self.close()
        return self.stats

    async def close(self) -> None:
        if self.puller is not None:
            # Delivered to the inbox but not yet handed out: back at once, not at ack_wait.
            await self._release(await self.puller.stop())
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.flush()  # the acks of the last batch
            await self.nc.close()

    async def _fetch(self) -> list[Msg]:
        assert self.puller is not None
        try:
            msgs = await self.puller.fetch(self.settings.nats_batch_size, FETCH_TIMEOUT_S)
        except TimeoutError:  # nothing came within FETCH_TIMEOUT_S
            await self._safely(self._check)
            return []
        except Exception as error:  # connection trouble, a deleted consumer: check, then retry
            log.warning("fetch failed: %r", error)
            await asyncio.sleep(0.5)
            self._reconnected[0] = True
            await self._safely(self._check)
            return []
        if msgs:
            with suppress(Exception):  # a message without JetStream metadata: no figure
                self.pending = int(msgs[-1].metadata.num_pending)
            self.fetched_at = time.monotonic()
        return msgs

    async def _safely(self, step: Any) -> None:
        try:
            await step()
        except Exception as error:
            log.warning("JetStream check failed (will retry): %r", error)

    async def _release(self, msgs: Sequence[Msg]) -> None:
        """Hand fetched but unrecorded messages back at once (shutting down)."""
        for msg in msgs:
            with suppress(Exception):  # the connection gone: ack_wait brings them back
                await msg.nak()

    # -- one batch -------------------------------------------------------------------------

    async def process(self, msgs: Sequence[Msg]) -> None:
        """Record a batch (in a worker thread: the hub is synchronous) and settle each message."""
        keep_alive = asyncio.ensure_future(self._keep_alive(msgs))
        started = time.monotonic()
        try:
            outcomes = await asyncio.to_thread(self._record, [(m.subject, m.data) for m in msgs])
        except StoreUnavailable as error:
            log.warning("store unavailable, retrying %d message(s) later: %s", len(msgs), error)
            outcomes = [error] * len(msgs)
        except Exception:
            log.exception("recording a batch of %d failed; recording one by one", len(msgs))
            deliveries = [_deliveries(m) for m in msgs]
            outcomes = await asyncio.to_thread(self._record_singly, msgs, deliveries)
        finally:
            keep_alive.cancel()
        await self._settle(msgs, outcomes)
        self.stats.batches += 1
        if self.on_batch is not None:
            channels = [channel_of(m.subject, self.prefix) for m in msgs]
            self.on_batch(channels, outcomes, time.monotonic() - started)

    async def _keep_alive(self, msgs: Sequence[Msg]) -> None:
        """Tell JetStream a long commit is still working, so it does not redeliver meanwhile."""
        while True:
            await asyncio.sleep(self.settings.nats_ack_wait_s / 3)
            for msg in msgs:
                await msg.in_progress()

    def _envelope(self, subject: str, data: bytes) -> Any:
        channel = channel_of(subject, self.prefix)
        try:
            raw = load_json(data)
        except orjson.JSONDecodeError as error:
            return InvalidInput("body", f"not JSON: {error}")
        try:
            envelope = parse_envelope(raw)
        except HubError as error:
            return error
        if envelope.source.channel != channel:
            # The subject is the channel's permission: a channel may not speak for another.
            return InvalidInput(
                "source.channel",
                f"the message came on {subject} but names channel {envelope.source.channel!r}",
            )
        return envelope

    def _record(self, messages: Sequence[tuple[str, bytes]]) -> list[Outcome]:
        return self.hub.record_batch([self._envelope(s, d) for s, d in messages])

    def _record_singly(self, msgs: Sequence[Msg], deliveries: Sequence[int]) -> list[Outcome]:
        """Find the message that breaks the batch: each alone, and a repeat offender rejected."""
        outcomes: list[Outcome] = []
        for msg, delivered in zip(msgs, deliveries, strict=True):
            try:
                outcomes += self._record([(msg.subject, msg.data)])
            except StoreUnavailable as error:
                outcomes.append(error)
            except Exception as error:
                log.exception("message %s failed", msg.subject)
                if delivered >= POISON_AFTER:
                    outcomes.append(InternalFailure(f"{type(error).__name__}: {error}"))
                else:
                    outcomes.append(StoreUnavailable(f"{type(error).__name__}: {error}"))
        return outcomes

    async def _settle(self, msgs: Sequence[Msg], outcomes: Sequence[Outcome]) -> None:
        """Ack what was committed, dead-letter what never will be, nak what may later."""
        rejects: list[tuple[Msg, HubError]] = []
        for msg, outcome in zip(msgs, outcomes, strict=True):
            if isinstance(outcome, Accepted):
                await msg.ack()
                if outcome.duplicate:
                    self.stats.duplicates += 1
                else:
                    self.stats.recorded += 1
            elif isinstance(outcome, StoreUnavailable):
                await msg.nak(delay=self._backoff(msg))
                self.stats.retried += 1
            else:
                rejects.append((msg, outcome))
        if not rejects:
            return
        assert self.js is not None
        acks = await asyncio.gather(
            *(self._dead_letter(msg, error) for msg, error in rejects), return_exceptions=True
        )
        for (msg, _), ack in zip(rejects, acks, strict=True):
            if isinstance(ack, BaseException):
                log.warning("could not publish to the rejected subject (retrying): %r", ack)
                await msg.nak(delay=self._backoff(msg))
                self.stats.retried += 1
            else:
                await msg.term()
                self.stats.rejected += 1

    async def _dead_letter(self, msg: Msg, error: HubError) -> Any:
        assert self.js is not None
        channel = channel_of(msg.subject, self.prefix)
        headers = {"Hub-Problem-Type": error.kind, "Hub-Problem-Status": str(error.status)}
        with suppress(Exception):
            # A redelivery after a crash between republish and term is dropped by the window.
            headers[Header.MSG_ID.value] = f"rejected:{msg.metadata.sequence.stream}"
        return await self.js.publish(
            f"{self.settings.nats_rejected_prefix}.{channel}",
            problem_message(msg, error),
            stream=self.settings.nats_stream,
            headers=headers,
        )

    def _backoff(self, msg: Msg) -> float:
        s = self.settings
        return min(s.nats_retry_delay_s * 2 ** (_deliveries(msg) - 1), s.nats_retry_max_delay_s)


def _deliveries(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered or 1)
    except Exception:
        return 1
