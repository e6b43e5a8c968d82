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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import IntegrityError, OperationalError
from eventsourcing.utils import EnvType

from hub import audit
from hub.batch import DecisionBatch, Earlier, Pending
from hub.codec import split_chain
from hub.collect import few_collections
from hub.customer import Customer, MergeSuggestion, RejectedAttempt
from hub.envelope import BUILT_IN_CHANNELS, DEFAULT_LIMITS, Envelope, Limits, Proposal, propose
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
from hub.export import export_store
from hub.identity import identity_digest as _identity_digest
from hub.identity import source_digest as _source_digest
from hub.keys import Keys, KeyTable
from hub.rules import conflicts_of
from hub.shred import new_key
from hub.state import CustomerState
from hub.statements import statements as told_by
from hub.streams import CustomerStreams

MAX_ATTEMPTS = 60


# A batch asks for the digest of one identity or source key several times, and a customer's
# identities come back batch after batch: hash each once.
identity_digest = functools.lru_cache(maxsize=65_536)(_identity_digest)
source_digest = functools.lru_cache(maxsize=4_096)(_source_digest)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)  # not frozen: a frozen init costs ~4x, once per touchpoint
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


class Hub(CustomerStreams):
    """The customer interaction hub's application service."""

    name = "Hub"

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        channels: Sequence[str] = (),
        default_region: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        limits: Limits = DEFAULT_LIMITS,
        key_cache_s: float = 2.0,
    ):
        super().__init__(env)
        self.limits = limits
        self.channels = BUILT_IN_CHANNELS | frozenset(channels)
        self.default_region = default_region
        self.clock = clock
        self._commit_listeners: list[Callable[[int], None]] = []
        # API keys (SPEC §10): `hub.keys.create/list/revoke/verify`, the CLI's and API's door.
        self.keys = Keys(cast(KeyTable, self.recorder), self.channels, clock, key_cache_s)

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Call `listener(position)` after each commit of this process (wakes followers)."""
        self._commit_listeners.append(listener)

    def _notify(self, recordings: list[Any]) -> None:
        if recordings and self._commit_listeners:
            position = max(r.notification.id for r in recordings)
            for listener in self._commit_listeners:
                listener(position)

    # -- reading --------------------------------------------------------------------------

    def find_customer(self, identity: str) -> str | None:
        """The customer an identity key (`email:…`) routes to, following merges."""
        owner = self.store.lookup_keys([identity_digest(identity)]).get(identity_digest(identity))
        if owner is None:
            return None
        batch = DecisionBatch(self, {})
        try:
            return batch.survivor_id(owner[0])
        finally:
            batch.release()

    # -- proposing ------------------------------------------------------------------------

    def propose(self, envelope: Envelope) -> Proposal:
        """Check an envelope against the registry and normalise it."""
        return propose(
            envelope,
            now=self.clock(),
            channels=self.channels,
            default_region=self.default_region,
            limits=self.limits,
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
                proposals.append(_kept(error))
        for attempt in range(MAX_ATTEMPTS):
            try:
                with few_collections():
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
        batch = DecisionBatch(
            self, self.store.lookup_keys(map(identity_digest, proposal.identities))
        )
        try:
            target_id, _ = self._target(proposal, batch)
            target = batch.customers[target_id] if target_id is not None else None
            if target is not None and target.erased:
                raise CustomerErased(str(target_id))
            state = batch.state_of(target) if target else CustomerState()
            conflicts = conflicts_of(state, proposal)
        finally:
            batch.release()
        return CheckResult(not conflicts, conflicts, target_id)

    def _decide_and_save(self, proposals: list[Proposal | HubError], mode: str) -> list[Outcome]:
        valid = [p for p in proposals if isinstance(p, Proposal)]
        source_keys = {source_digest(p.channel, p.source_id) for p in valid}
        identities = {identity_digest(i) for p in valid for i in p.identities}
        # One read of every key the batch needs, then one of every customer they point at.
        found, heads = self.store.lookup_owners(source_keys | identities)
        recorded = {key: found[key] for key in source_keys if key in found}
        batch = DecisionBatch(self, {key: found[key] for key in identities if key in found}, heads)
        batch.prefetch([*batch.owners.values(), *(p.customer_id for p in valid if p.customer_id)])
        decided: list[Pending | Earlier | HubError] = []
        for proposal in proposals:
            if isinstance(proposal, HubError):
                decided.append(proposal)
                continue
            key = source_digest(proposal.channel, proposal.source_id)
            if key in recorded:
                owner, version = recorded[key]
                decided.append(Earlier(owner, cast(int, version), proposal.touchpoint_id))
            elif key in batch.sources:
                first = batch.sources[key]
                decided.append(Pending(None, first.customer_id, first.touchpoint_id, key, []))
            else:
                try:
                    decided.append(self._decide(proposal, mode, batch, key))
                except ConflictError as error:
                    batch.created.append(_rejection(proposal, error.customer_id, error))
                    decided.append(_kept(error))
                except AmbiguousIdentity as error:
                    batch.created.append(_rejection(proposal, None, error))
                    decided.append(_kept(error))
                except HubError as error:
                    decided.append(_kept(error))

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
            (d.customer_id, d.version) for d in decided if isinstance(d, Earlier)
        )
        return [_outcome(d, positions, earlier, batch) for d in decided]

    def _target(
        self, proposal: Proposal, batch: DecisionBatch
    ) -> tuple[str | None, dict[str, str]]:
        """The id of the customer the proposal goes to (None: a new one; the customer is then
        in `batch.customers`), and the identities already owned.

        Raises AmbiguousIdentity when the identities point at several customers and the
        proposal names none of them; when it names one, the others are suggested for merging.
        """
        owned: dict[str, str] = {}
        candidates: dict[str, list[str]] = {}
        for identity in proposal.identities:
            owner = batch.owners.get(identity_digest(identity))
            if owner is not None:
                owned[identity] = owner
                candidates.setdefault(batch.survivor_id(owner), []).append(identity)
        if proposal.customer_id is not None:
            target = batch.survivor_id(proposal.customer_id, "customer.id")
            others = {c: ids for c, ids in candidates.items() if c != target}
            if others:
                everyone = {**others, target: candidates.get(target, [])}
                batch.created.append(MergeSuggestion(everyone, proposal.touchpoint_id, target))
            return target, owned
        if len(candidates) > 1:
            batch.created.append(MergeSuggestion(candidates, proposal.touchpoint_id, None))
            raise AmbiguousIdentity(candidates)
        return next(iter(candidates), None), owned

    def _decide(self, proposal: Proposal, mode: str, batch: DecisionBatch, key: str) -> Pending:
        customer_id, owned = self._target(proposal, batch)
        target = batch.customers[customer_id] if customer_id is not None else None
        if target is not None and target.erased:
            raise CustomerErased(str(customer_id))
        state = batch.state_of(target) if target else CustomerState()
        conflicts = conflicts_of(state, proposal)
        if conflicts and mode == "live":
            raise ConflictError(conflicts, customer_id)
        if target is None:
            target = Customer()
            customer_id = str(target.id)
            batch.new[customer_id] = new_key()
            batch.customers[customer_id] = target
        assert customer_id is not None
        new_identities = [i for i in proposal.identities if i not in owned]
        detected = [c.as_dict() for c in conflicts]
        touchpoint = target.record(
            proposal.kind, **proposal.event_fields(mode, new_identities, detected)
        )
        batch.keys.append((key, customer_id, touchpoint.originator_version))
        for identity in new_identities:
            digest = identity_digest(identity)
            batch.keys.append((digest, customer_id, None))
            batch.owners[digest] = customer_id
        pending = Pending(touchpoint, customer_id, proposal.touchpoint_id, key, detected)
        batch.sources[key] = pending
        return pending

    # -- erasing --------------------------------------------------------------------------

    def erase(self, customer_id: str) -> dict[str, Any]:
        """Shred the personal data of the customer and of every customer merged into it.

        Appends `Erased` to each stream and, in the same transaction, deletes their keys and
        unlinks their identities. The events stay: hashes, counts and order are untouched.
        """
        for _ in range(MAX_ATTEMPTS):
            batch = DecisionBatch(self, {})
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
        return export_store(self.store, write, streams, since)

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
        return told_by(touchpoints, state, moment)

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


def _outcome(
    decided: Pending | Earlier | HubError,
    positions: dict[int, int],
    earlier: dict[tuple[str, int], int],
    batch: DecisionBatch,
) -> Outcome:
    if isinstance(decided, HubError):
        return decided
    if isinstance(decided, Earlier):
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


def _kept(error: HubError) -> HubError:
    """A refusal kept as an item's outcome, without its traceback.

    The traceback holds this frame, whose locals hold the list the error goes into: a cycle
    that keeps the whole batch (proposals, events, recordings) alive until the cyclic
    collector finds it, which on the batch path cost more than deciding the batch.
    """
    return error.with_traceback(None)


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
