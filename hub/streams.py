"""The application's side of storage: the recorders, the hash-chaining mapper, and loading
customers for the batch path through the aggregate cache and snapshots.

`Hub` (hub/app.py) builds on this; it holds no decisions, only how customers are read and
how saves keep chain heads, the cache and snapshots right.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import IntegrityError, Recording, Transcoder
from eventsourcing.utils import EnvType

from hub.cache import AggregateCache
from hub.codec import HubMapper, OrjsonTranscoder, SnapshotUnreadable, split_chain
from hub.customer import Customer
from hub.errors import CustomerNotFound
from hub.shred import KeyShredded, Shredder
from hub.store import HubRecorder, creating_tables

DEFAULT_CACHE_SIZE = 10_000
DEFAULT_CACHE_FACTS = 50_000  # ~2 kB each in memory (measured by bench.soak --probe)
DEFAULT_SNAPSHOT_INTERVAL = 500
RECORDERS = {
    "eventsourcing.sqlite": "hub.store:HubSQLiteRecorder",
    "eventsourcing.postgres": "hub.store:HubPostgresRecorder",
}


class CustomerStreams(Application[UUID]):
    """Customer streams with the key index, sealing, a bounded cache and snapshots."""

    def __init__(self, env: EnvType | None = None):
        super().__init__(env)
        self.store = cast(HubRecorder, self.recorder)
        cast(HubMapper, self.mapper).lookup = self._stored_hash
        self.shredder = Shredder(self.store.customer_keys)
        cast(HubMapper, self.mapper).shredder = self.shredder
        self.cache: AggregateCache[Customer] = AggregateCache(
            int(self.env.get("AGGREGATE_CACHE_SIZE", str(DEFAULT_CACHE_SIZE))),
            max_weight=int(self.env.get("AGGREGATE_CACHE_FACTS", str(DEFAULT_CACHE_FACTS))),
            weigh=lambda customer: customer.state.weight(),
        )
        self.snapshot_interval = _snapshot_interval(self.env)
        if self.snapshots is not None:
            recorder: Any = self.snapshots.recorder
            self.store.snapshots_table = recorder.events_table_name

    # -- construction: the library's hooks ------------------------------------------------

    def construct_snapshot_store(self) -> Any:
        # The library creates the snapshots table here: under the schema lock on PostgreSQL,
        # or two hubs starting together race on it ("hub_snapshots" already exists).
        with creating_tables(self.recorder):
            return super().construct_snapshot_store()

    def construct_env(self, name: str, env: EnvType | None = None) -> Any:
        environment = super().construct_env(name, env)
        if _snapshot_interval(environment):
            environment["IS_SNAPSHOTTING_ENABLED"] = "y"
        module = environment.get("PERSISTENCE_MODULE", "")
        if module in RECORDERS and not environment.get("APPLICATION_RECORDER_TOPIC"):
            environment["APPLICATION_RECORDER_TOPIC"] = RECORDERS[module]
        return environment

    def construct_transcoder(self) -> Transcoder:
        return OrjsonTranscoder()

    def construct_mapper(self) -> HubMapper:
        return HubMapper(self.construct_transcoder())

    def _stored_hash(self, originator_id: UUID, version: int) -> str:
        stored = self.store.select_events(originator_id, gt=version - 1, lte=version)
        if not stored:
            raise IntegrityError(f"stream {originator_id} has no version {version}")
        _, links, _ = split_chain(stored[0].state)
        return links["hash"] if links else ""

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        # The library's `save`, but aggregates are recognised by class: its runtime protocol
        # checks cost more per aggregate than sealing an event on the batch path.
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if isinstance(obj, Aggregate):
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            else:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    def _record(self, processing_event: ProcessingEvent[UUID]) -> list[Recording[UUID]]:
        # The chain heads travel with the aggregates: a cached customer's next event links
        # to the hash it holds, with no read of the store; they are updated after the commit.
        mapper = cast(HubMapper, self.mapper)
        mapper.discard_heads()
        for event in processing_event.events:
            aggregate = processing_event.aggregates.get(event.originator_id)
            head = getattr(aggregate, "chain_head", None)
            if head is not None and head[0] == event.originator_version - 1:
                mapper.expect_head(event.originator_id, *head)
        try:
            recordings = super()._record(processing_event)
        except BaseException:
            mapper.discard_heads()
            raise
        heads = mapper.commit_heads()
        for originator_id, aggregate in processing_event.aggregates.items():
            if isinstance(aggregate, Customer) and originator_id in heads:
                aggregate.chain_head = heads[originator_id]
        return recordings

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        # A customer whose save passed a multiple of the interval is snapshotted as it stands
        # in memory (committed, its chain head known), not reloaded from the store as the
        # library would. A snapshot is an optimisation: one that cannot be written (erased
        # meanwhile, or another process wrote that version's) is left out.
        if self.snapshots is None or not self.snapshot_interval:
            return
        due = {
            event.originator_id
            for event in processing_event.events
            if event.originator_version % self.snapshot_interval == 0
        }
        for originator_id in due:
            customer = processing_event.aggregates.get(originator_id)
            if not isinstance(customer, Customer) or customer.erased:
                continue
            try:
                self.snapshots.put([Customer.Snapshot.take(customer)])
            except (IntegrityError, KeyShredded):
                continue

    def load_customer(self, customer_id: str, field: str | None = None) -> Customer:
        try:
            customer: object = self.repository.get(UUID(customer_id))
        except (AggregateNotFoundError, ValueError):
            raise CustomerNotFound(customer_id, field) from None
        if not isinstance(customer, Customer):
            raise CustomerNotFound(customer_id, field)
        return customer

    def load_customers(
        self, customer_ids: Iterable[str], heads: Mapping[str, int] | None = None
    ) -> dict[str, Customer]:
        """The customers among `customer_ids`, current as of now; unknown ids are left out.

        Cached customers are taken out of the cache (the caller puts them back once its
        batch committed, `DecisionBatch.release`) and brought up to date with the events after
        their cached version, in the one query that reads the others' whole streams. `heads`
        (customer → version in the store, as `lookup_owners` read it) spares that query for
        cached customers already at that version.
        """
        heads = heads or {}
        streams: dict[str, UUID] = {}
        for customer_id in customer_ids:
            try:
                streams[customer_id] = UUID(customer_id)
            except ValueError:
                continue
        cached: dict[str, Customer] = self.cache.take(streams)
        mapper = cast(HubMapper, self.mapper)
        if self.snapshots is not None:
            # A stream shorter than the interval has no snapshot: no need to look.
            uncached = [
                stream
                for cid, stream in streams.items()
                if cid not in cached
                and heads.get(cid, self.snapshot_interval) >= self.snapshot_interval
            ]
            for stream, stored_snapshot in self.store.latest_snapshots(uncached).items():
                try:
                    snapshot: Any = mapper.to_domain_event(stored_snapshot)
                except SnapshotUnreadable:
                    continue  # the key is gone: the events say what is left
                cached[str(stream)] = snapshot.mutate(None)
        after = {
            stream: cached[cid].version if cid in cached else 0
            for cid, stream in streams.items()
            if cid not in cached or heads.get(cid) != cached[cid].version
        }
        stored = self.store.select_streams(after)
        customers = {}
        for customer_id, stream in streams.items():
            aggregate: Any = cached.get(customer_id)
            new_events = stored.get(stream, ())
            for stored_event in new_events:
                domain_event: Any = mapper.to_domain_event(stored_event)
                aggregate = domain_event.mutate(aggregate)
            if not isinstance(aggregate, Customer):
                continue
            if new_events:
                head = mapper.head(stream)
                aggregate.chain_head = head if head and head[0] == aggregate.version else None
            customers[customer_id] = aggregate
        return customers


def _snapshot_interval(env: Any) -> int:
    return int(env.get("SNAPSHOT_INTERVAL", str(DEFAULT_SNAPSHOT_INTERVAL)) or 0)
