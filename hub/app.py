"""The application service: the one door through which touchpoints are recorded and checked.

Every write goes get → decide → one `save(...)` of every aggregate touched, with the key
index rows in the same transaction. A batch is decided in order (a later item sees what an
earlier one recorded) and committed at once; when another writer wins a race (a version,
source key or identity clash), the whole batch is decided again on the new state.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import IntegrityError, OperationalError, Recording, Transcoder
from eventsourcing.utils import EnvType

from hub import audit
from hub.cache import AggregateCache
from hub.codec import HubMapper, OrjsonTranscoder, SnapshotUnreadable, split_chain
from hub.customer import Customer, MergeSuggestion, RejectedAttempt, Touchpoint
from hub.envelope import BUILT_IN_CHANNELS, Envelope, Proposal, propose
from hub.errors import (
    AmbiguousIdentity,
    Conflict,
    ConflictError,
    CustomerErased,
    CustomerNotFound,
    HubError,
    InvalidInput,
    MergeRefused,
    StoreUnavailable,
)
from hub.identity import identity_digest as _identity_digest
from hub.identity import source_digest as _source_digest
from hub.rules import conflicts_of
from hub.shred import KeyShredded, Shredder, new_key
from hub.state import CustomerState
from hub.store import HubRecorder, KeyRow

MAX_ATTEMPTS = 60
DEFAULT_CACHE_SIZE = 10_000
DEFAULT_SNAPSHOT_INTERVAL = 500
RECORDERS = {
    "eventsourcing.sqlite": "hub.store:HubSQLiteRecorder",
    "eventsourcing.postgres": "hub.store:HubPostgresRecorder",
}


# A batch asks for the digest of one identity or source key several times, and a customer's
# identities come back batch after batch: hash each once.
identity_digest = functools.lru_cache(maxsize=65_536)(_identity_digest)
source_digest = functools.lru_cache(maxsize=4_096)(_source_digest)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Accepted:
    """A touchpoint in the store: where it went and at which position."""

    touchpoint_id: str
    customer_id: str
    position: int
    duplicate: bool = False
    detected_conflicts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "touchpoint_id": self.touchpoint_id,
            "customer_id": self.customer_id,
            "position": self.position,
            "duplicate": self.duplicate,
        }
        if self.detected_conflicts:
            doc["detected_conflicts"] = self.detected_conflicts
        return doc


Outcome = Accepted | HubError


@dataclass(frozen=True)
class CheckResult:
    """The answer to a dry run: would the touchpoint be accepted, and if not, why."""

    ok: bool
    conflicts: list[Conflict]
    customer_id: str | None


@dataclass
class _Pending:
    touchpoint: Touchpoint | None  # None: a duplicate of an earlier item of this batch
    customer_id: str
    touchpoint_id: str
    source_key: str
    detected: list[dict[str, Any]]


@dataclass(frozen=True)
class _Earlier:
    """A source key already in the store: the touchpoint recorded for it the first time."""

    customer_id: str
    version: int
    touchpoint_id: str


class _Batch:
    """The aggregates, key rows and decisions of one attempt at committing a batch."""

    def __init__(
        self,
        hub: Hub,
        owners: dict[str, tuple[str, int | None]],
        heads: dict[str, int] | None = None,
    ):
        self.hub = hub
        self.owners = {key: owner for key, (owner, _) in owners.items()}
        self.heads = heads or {}  # customers' versions in the store, read with their keys
        self.customers: dict[str, Customer] = {}
        self.created: list[Any] = []
        self.keys: list[KeyRow] = []
        self.sources: dict[str, _Pending] = {}
        self.new: dict[str, bytes] = {}  # customers created by this batch, and their keys

    def customer(self, customer_id: str, field: str | None = None) -> Customer:
        if customer_id not in self.customers:
            loaded = self.hub.load_customers([customer_id])
            if customer_id not in loaded:
                raise CustomerNotFound(customer_id, field)
            self.customers.update(loaded)
        return self.customers[customer_id]

    def prefetch(self, customer_ids: Iterable[str]) -> None:
        """Load the customers not loaded yet, and those merged with them, a query per round."""
        wanted = {c for c in customer_ids if c not in self.customers}
        while wanted:
            loaded = self.hub.load_customers(wanted, self.heads)
            self.customers.update(loaded)
            wanted = {
                other
                for customer in loaded.values()
                for other in (customer.merged_into, *customer.merged_from)
                if other is not None and other not in self.customers
            }

    def survivor(self, customer_id: str, field: str | None = None) -> Customer:
        """The customer a touchpoint for `customer_id` goes to, following merges."""
        customer = self.customer(customer_id, field)
        seen = {customer_id}
        while customer.merged_into is not None and customer.merged_into not in seen:
            seen.add(customer.merged_into)
            customer = self.customer(customer.merged_into)
        return customer

    def state_of(self, customer: Customer) -> CustomerState:
        """The customer's state with every customer merged into it folded in."""
        if not customer.merged_from:
            return customer.state
        combined = CustomerState()
        combined.absorb(customer.state)
        for other_id in customer.merged_from:
            combined.absorb(self.customer(other_id).state)
        return combined

    def release(self) -> None:
        """Hand the customers back to the cache: committed, or only read."""
        self.hub.cache.put(
            c for c in self.customers.values() if not c.pending_events and not c.erased
        )

    def aggregates(self) -> list[Any]:
        """The aggregates with events to save (the library inspects each one it is given)."""
        return [a for a in (*self.customers.values(), *self.created) if a.pending_events]

    def key_owners(self) -> set[str]:
        """The customers already in the store whose keys the pending events are sealed with."""
        owners = {cid for cid, c in self.customers.items() if c.pending_events}
        for created in self.created:
            if isinstance(created, RejectedAttempt) and created.customer_id:
                owners.add(created.customer_id)
            elif isinstance(created, MergeSuggestion):
                owners.update(created.customers)
        return owners - self.new.keys()


class Hub(Application[UUID]):
    """The customer interaction hub's application service."""

    name = "Hub"

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        channels: Sequence[str] = (),
        default_region: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        super().__init__(env)
        self.channels = BUILT_IN_CHANNELS | frozenset(channels)
        self.default_region = default_region
        self.clock = clock
        self.store = cast(HubRecorder, self.recorder)
        cast(HubMapper, self.mapper).lookup = self._stored_hash
        self.shredder = Shredder(self.store.customer_keys)
        cast(HubMapper, self.mapper).shredder = self.shredder
        self.cache: AggregateCache[Customer] = AggregateCache(
            int(self.env.get("AGGREGATE_CACHE_SIZE", str(DEFAULT_CACHE_SIZE)))
        )
        self.snapshot_interval = _snapshot_interval(self.env)
        if self.snapshots is not None:
            recorder: Any = self.snapshots.recorder
            self.store.snapshots_table = recorder.events_table_name
        self._commit_listeners: list[Callable[[int], None]] = []

    # -- construction: the library's hooks ------------------------------------------------

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

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Call `listener(position)` after each commit of this process (wakes followers)."""
        self._commit_listeners.append(listener)

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

    def _notify(self, recordings: list[Any]) -> None:
        if recordings and self._commit_listeners:
            position = max(r.notification.id for r in recordings)
            for listener in self._commit_listeners:
                listener(position)

    # -- reading --------------------------------------------------------------------------

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
        batch committed, `_Batch.release`) and brought up to date with the events after
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

    def find_customer(self, identity: str) -> str | None:
        """The customer an identity key (`email:…`) routes to, following merges."""
        owner = self.store.lookup_keys([identity_digest(identity)]).get(identity_digest(identity))
        if owner is None:
            return None
        batch = _Batch(self, {})
        try:
            return str(batch.survivor(owner[0]).id)
        finally:
            batch.release()

    # -- proposing ------------------------------------------------------------------------

    def propose(self, envelope: Envelope) -> Proposal:
        """Check an envelope against the registry and normalise it."""
        return propose(
            envelope, now=self.clock(), channels=self.channels, default_region=self.default_region
        )

    # -- writing --------------------------------------------------------------------------

    def record(self, envelope: Envelope | Proposal, mode: str = "live") -> Accepted:
        """Record one touchpoint; raises the HubError that rejects it."""
        (outcome,) = self.record_batch([envelope], mode)
        if isinstance(outcome, HubError):
            raise outcome
        return outcome

    def record_batch(
        self, items: Sequence[Envelope | Proposal | HubError], mode: str = "live"
    ) -> list[Outcome]:
        """Record many touchpoints in order, in one transaction; an outcome per item."""
        if mode not in ("live", "record"):
            raise InvalidInput("mode", "is `live` or `record`")
        proposals: list[Proposal | HubError] = []
        for item in items:
            try:
                proposals.append(self.propose(item) if isinstance(item, Envelope) else item)
            except HubError as error:
                proposals.append(error)
        for attempt in range(MAX_ATTEMPTS):
            try:
                return self._decide_and_save(proposals, mode)
            except IntegrityError:
                # Another writer changed a customer, claimed an identity or recorded a source
                # key first: decide again on the new state.
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
            except OperationalError as error:
                raise StoreUnavailable(str(error)) from error
        raise StoreUnavailable(f"gave up after {MAX_ATTEMPTS} write conflicts; try again")

    def check(self, envelope: Envelope) -> CheckResult:
        """Dry run: the conflicts the touchpoint would cause now; records nothing."""
        proposal = self.propose(envelope)
        batch = _Batch(self, self.store.lookup_keys(map(identity_digest, proposal.identities)))
        try:
            target, _ = self._target(proposal, batch)
            if target is not None and target.erased:
                raise CustomerErased(str(target.id))
            state = batch.state_of(target) if target else CustomerState()
            conflicts = conflicts_of(state, proposal)
        finally:
            batch.release()
        return CheckResult(not conflicts, conflicts, str(target.id) if target else None)

    def _decide_and_save(self, proposals: list[Proposal | HubError], mode: str) -> list[Outcome]:
        valid = [p for p in proposals if isinstance(p, Proposal)]
        source_keys = {source_digest(p.channel, p.source_id) for p in valid}
        identities = {identity_digest(i) for p in valid for i in p.identities}
        # One read of every key the batch needs, then one of every customer they point at.
        found, heads = self.store.lookup_owners(source_keys | identities)
        recorded = {key: found[key] for key in source_keys if key in found}
        batch = _Batch(self, {key: found[key] for key in identities if key in found}, heads)
        batch.prefetch([*batch.owners.values(), *(p.customer_id for p in valid if p.customer_id)])
        decided: list[_Pending | _Earlier | HubError] = []
        for proposal in proposals:
            if isinstance(proposal, HubError):
                decided.append(proposal)
                continue
            key = source_digest(proposal.channel, proposal.source_id)
            if key in recorded:
                owner, version = recorded[key]
                decided.append(_Earlier(owner, cast(int, version), proposal.touchpoint_id))
            elif key in batch.sources:
                first = batch.sources[key]
                decided.append(_Pending(None, first.customer_id, first.touchpoint_id, key, []))
            else:
                try:
                    decided.append(self._decide(proposal, mode, batch, key))
                except ConflictError as error:
                    batch.created.append(_rejection(proposal, error.customer_id, error))
                    decided.append(error)
                except AmbiguousIdentity as error:
                    batch.created.append(_rejection(proposal, None, error))
                    decided.append(error)
                except HubError as error:
                    decided.append(error)

        positions: dict[int, int] = {}
        aggregates = batch.aggregates()
        if aggregates:
            # One look-up of every key the batch seals with, not one per event; a write (and a
            # commit of its own) only for customers in the store without a key yet.
            owners = batch.key_owners()
            known = self.shredder.keys(owners, create=False)
            missing = [owner for owner in owners if known.get(owner) is None]
            if missing:
                self.shredder.keys(missing, create=True)
            self.shredder.adopt(batch.new)
            saved = self.save(*aggregates, hub_keys=batch.keys, hub_new_keys=batch.new)
            for recording in saved:
                positions[id(recording.domain_event)] = recording.notification.id
        # Committed (or nothing to write): the customers are current, keep them for next time.
        # A batch that raised never gets here, so a lost race leaves nothing stale behind.
        batch.release()
        earlier = self.store.positions(
            (d.customer_id, d.version) for d in decided if isinstance(d, _Earlier)
        )
        return [_outcome(d, positions, earlier, batch) for d in decided]

    def _target(self, proposal: Proposal, batch: _Batch) -> tuple[Customer | None, dict[str, str]]:
        """The customer the proposal goes to (None: a new one), and the identities already owned.

        Raises AmbiguousIdentity when the identities point at several customers and the
        proposal names none of them; when it names one, the others are suggested for merging.
        """
        owned: dict[str, str] = {}
        candidates: dict[str, list[str]] = {}
        for identity in proposal.identities:
            owner = batch.owners.get(identity_digest(identity))
            if owner is not None:
                owned[identity] = owner
                survivor = str(batch.survivor(owner).id)
                candidates.setdefault(survivor, []).append(identity)
        if proposal.customer_id is not None:
            target = batch.survivor(proposal.customer_id, "customer.id")
            others = {c: ids for c, ids in candidates.items() if c != str(target.id)}
            if others:
                everyone = {**others, str(target.id): candidates.get(str(target.id), [])}
                batch.created.append(
                    MergeSuggestion(everyone, proposal.touchpoint_id, str(target.id))
                )
            return target, owned
        if len(candidates) > 1:
            batch.created.append(MergeSuggestion(candidates, proposal.touchpoint_id, None))
            raise AmbiguousIdentity(candidates)
        if candidates:
            return batch.customer(next(iter(candidates))), owned
        return None, owned

    def _decide(self, proposal: Proposal, mode: str, batch: _Batch, key: str) -> _Pending:
        target, owned = self._target(proposal, batch)
        if target is not None and target.erased:
            raise CustomerErased(str(target.id))
        state = batch.state_of(target) if target else CustomerState()
        conflicts = conflicts_of(state, proposal)
        if conflicts and mode == "live":
            raise ConflictError(conflicts, str(target.id) if target else None)
        if target is None:
            target = Customer()
            batch.new[str(target.id)] = new_key()
            batch.customers[str(target.id)] = target
        customer_id = str(target.id)
        new_identities = [i for i in proposal.identities if i not in owned]
        detected = [c.as_dict() for c in conflicts]
        touchpoint = target.record(
            proposal.kind, **proposal.event_fields(mode, new_identities, detected)
        )
        batch.keys.append((key, customer_id, touchpoint.originator_version))
        for identity in new_identities:
            batch.keys.append((identity_digest(identity), customer_id, None))
            batch.owners[identity_digest(identity)] = customer_id
        pending = _Pending(touchpoint, customer_id, proposal.touchpoint_id, key, detected)
        batch.sources[key] = pending
        return pending

    # -- erasing --------------------------------------------------------------------------

    def erase(self, customer_id: str) -> dict[str, Any]:
        """Shred the personal data of the customer and of every customer merged into it.

        Appends `Erased` to each stream and, in the same transaction, deletes their keys and
        unlinks their identities. The events stay: hashes, counts and order are untouched.
        """
        for _ in range(MAX_ATTEMPTS):
            batch = _Batch(self, {})
            survivor = batch.survivor(customer_id)
            group = [survivor, *(batch.customer(other) for other in survivor.merged_from)]
            erased = [str(c.id) for c in group]
            todo = [c for c in group if not c.erased]
            if not todo:
                return {"customer_id": str(survivor.id), "erased": erased, "position": None}
            for customer in todo:
                customer.erase()
            try:
                recordings = self.save(*todo, hub_erase=[str(c.id) for c in todo])
            except IntegrityError:
                continue  # a touchpoint arrived meanwhile: erase it too
            finally:
                self.shredder.forget(erased)
            position = recordings[-1].notification.id
            return {"customer_id": str(survivor.id), "erased": erased, "position": position}
        raise StoreUnavailable(f"gave up after {MAX_ATTEMPTS} write conflicts; try again")

    # -- merging --------------------------------------------------------------------------

    def merge(self, survivor_id: str, other_id: str) -> int:
        """Merge `other_id` into `survivor_id`; returns the position of the merge."""
        survivor = self.load_customer(survivor_id)
        other = self.load_customer(other_id, "from")
        if survivor.id == other.id:
            raise MergeRefused("a customer cannot be merged into itself")
        for customer in (survivor, other):
            if customer.merged_into is not None:
                raise MergeRefused(
                    f"customer {customer.id} is merged into {customer.merged_into}; "
                    "merge into that one"
                )
        survivor.absorb(str(other.id))
        other.merge_into(str(survivor.id))
        return self._save_or_retry(survivor, other)

    def unmerge(self, survivor_id: str, other_id: str) -> int:
        """Undo a merge: both customers stand as they were; what came in between stays."""
        survivor = self.load_customer(survivor_id)
        other = self.load_customer(other_id, "from")
        if other.merged_into != str(survivor.id):
            raise MergeRefused(f"customer {other_id} is not merged into {survivor_id}")
        survivor.release(str(other.id))
        other.unmerge(str(survivor.id))
        return self._save_or_retry(survivor, other)

    def _save_or_retry(self, *aggregates: Any) -> int:
        try:
            return self.save(*aggregates)[-1].notification.id
        except IntegrityError:
            raise MergeRefused("one of the customers changed meanwhile; try again") from None

    # -- history --------------------------------------------------------------------------

    def history(self, customer_id: str, as_of: datetime | None = None) -> list[dict[str, Any]]:
        """The customer's raw events (and those of customers merged into it), in log order."""
        events = []
        for stream in self.streams_of(customer_id):
            for notification in self.store.stream(stream):
                doc = self._history_entry(notification)
                if as_of is None or datetime.fromisoformat(doc["recorded_at"]) <= as_of:
                    events.append(doc)
        events.sort(key=lambda doc: doc["position"])
        return events

    def streams_of(self, customer_id: str) -> list[UUID]:
        """The customer's stream and the streams of customers merged into it."""
        customer = self.load_customer(customer_id)
        return [customer.id, *(UUID(other) for other in customer.merged_from)]

    def verify(self, customer_id: str | None = None) -> audit.Report:
        """Check the hash chains (of one customer's streams, or of the whole store)."""
        streams = self._audited_streams(customer_id) if customer_id else None
        return audit.verify_store(self.store, streams)

    def export(
        self, write: Callable[[bytes], Any], customer_id: str | None = None, since: int = 0
    ) -> int:
        """Write events after position `since` as export lines, in log order; a count."""
        streams = self._audited_streams(customer_id) if customer_id else None
        return audit.export_store(self.store, write, streams, since)

    def _audited_streams(self, customer_id: str) -> list[UUID]:
        """The customer's streams, read off the stored events without trusting them enough
        to rebuild the aggregate (a damaged stream must still be checked)."""
        try:
            stream = UUID(customer_id)
        except ValueError:
            raise CustomerNotFound(customer_id, "customer_id") from None
        notifications = self.store.stream(stream)
        if not notifications:
            raise CustomerNotFound(customer_id, "customer_id")
        return [stream, *(UUID(other) for other in audit.merged_in(notifications))]

    def statements(self, customer_id: str, as_of: datetime | None = None) -> list[dict[str, Any]]:
        """What the company had told the customer by `as_of`: claims and promises, with status."""
        moment = as_of or self.clock()
        touchpoints = [e for e in self.history(customer_id, moment) if "type" in e]
        state = CustomerState()
        for record in touchpoints:
            state.apply_touchpoint(record)
        return audit.statements(touchpoints, state, moment)

    def _history_entry(self, notification: Any) -> dict[str, Any]:
        content, links, _ = split_chain(notification.state)
        content = self.shredder.open(content)
        event = {
            "position": notification.id,
            "customer_id": str(notification.originator_id),
            "version": notification.originator_version,
            "event": notification.topic.rpartition(":")[2].rpartition(".")[2],
            "recorded_at": content.pop("timestamp"),
            "hash": links["hash"] if links else None,
            "prev_hash": links["prev"] if links else None,
        }
        event_type = getattr(self.mapper.to_domain_event(notification), "TYPE", None)
        if event_type:
            event["type"] = event_type
            event["source"] = {"channel": content["channel"], "id": content["source_id"]}
        event.update(content)
        return event


def _snapshot_interval(env: Any) -> int:
    return int(env.get("SNAPSHOT_INTERVAL", str(DEFAULT_SNAPSHOT_INTERVAL)) or 0)


def _outcome(
    decided: _Pending | _Earlier | HubError,
    positions: dict[int, int],
    earlier: dict[tuple[str, int], int],
    batch: _Batch,
) -> Outcome:
    if isinstance(decided, HubError):
        return decided
    if isinstance(decided, _Earlier):
        position = earlier[(decided.customer_id, decided.version)]
        return Accepted(decided.touchpoint_id, decided.customer_id, position, duplicate=True)
    if decided.touchpoint is None:
        first = batch.sources[decided.source_key]
        assert first.touchpoint is not None
        return Accepted(
            first.touchpoint_id, first.customer_id, positions[id(first.touchpoint)], duplicate=True
        )
    return Accepted(
        decided.touchpoint_id,
        decided.customer_id,
        positions[id(decided.touchpoint)],
        detected_conflicts=decided.detected,
    )


def _rejection(proposal: Proposal, customer_id: str | None, error: HubError) -> RejectedAttempt:
    conflicts = error.problem().get("conflicts", [])
    return RejectedAttempt(
        customer_id=customer_id,
        touchpoint={
            "touchpoint_id": proposal.touchpoint_id,
            "type": proposal.type,
            "channel": proposal.channel,
            "source_id": proposal.source_id,
            "occurred_at": proposal.occurred_at.isoformat(),
            "actor": proposal.actor,
            "claims": [c.as_dict() for c in proposal.claims],
        },
        reason=error.kind,
        conflicts=conflicts,
    )
