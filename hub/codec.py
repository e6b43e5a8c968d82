"""How events become stored bytes: an orjson transcoder and a mapper that hash-chains each stream.

Stored state is the event's fields as JSON with sorted keys (personal fields sealed under the
customer's key first: see hub/shred.py), plus `_chain`:
`{"prev": <hash of the previous event of this stream>, "hash": <this event's hash>}`.
An event's hash is SHA-256 over, joined by newlines: the previous hash, the stream id, the
version, the topic and the event's *canonical bytes* (its stored JSON without `_chain`,
re-encoded with sorted keys). The first event of a stream has `prev` "". So an edited,
removed, reordered or inserted event breaks the chain at a place a verifier can name.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import DomainEventProtocol, Snapshot
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic

CHAIN = "_chain"
SEALED = "_sealed"  # a snapshot's state, sealed whole under the customer's key


class SnapshotUnreadable(Exception):
    """A snapshot whose customer's key is gone: load the stream from its events instead."""


GENESIS = ""


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"cannot store {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, UTC-aware datetimes as RFC 3339."""
    return orjson.dumps(obj, default=_default, option=orjson.OPT_SORT_KEYS)


class OrjsonTranscoder(Transcoder):
    """JSON with orjson, keys sorted so equal states give equal bytes."""

    def encode(self, obj: Any) -> bytes:
        return dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


def chain_hash(prev: str, originator_id: str, version: int, topic: str, canonical: bytes) -> str:
    """The hash of one stored event, given the hash of the one before it."""
    digest = hashlib.sha256()
    digest.update(f"{prev}\n{originator_id}\n{version}\n{topic}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


def with_chain(state: dict[str, Any], canonical: bytes, prev: str, digest: str) -> bytes:
    """The stored bytes: `state` with its `_chain` links, as `dumps` would give them.

    Every other top-level key sorts after `_chain` (field names are lower case, `_personal`
    follows it), so the links go first and the canonical bytes follow unchanged: one
    encoding per event instead of two. Any other shape is encoded in full.
    """
    if state and min(state) > CHAIN and CHAIN not in state:
        links = dumps({"prev": prev, "hash": digest})
        return b'{"' + CHAIN.encode() + b'":' + links + b"," + canonical[1:]
    return dumps({**state, CHAIN: {"prev": prev, "hash": digest}})


def split_chain(state: bytes) -> tuple[dict[str, Any], dict[str, str] | None, bytes]:
    """The stored JSON, its chain links, and its canonical bytes."""
    content = orjson.loads(state)
    links = content.pop(CHAIN, None)
    return content, links, dumps(content)


class HubMapper(Mapper[UUID]):
    """Maps events to stored JSON and back, and links each stream's events into a hash chain.

    The mapper remembers the last hash it saw per stream; when a write follows a version it
    has not seen (another process wrote it), `lookup` reads that event's hash from the store.
    Hashes of events being written are kept per thread until their transaction commits
    (`commit_heads`); a write that failed (`discard_heads`) must not leave its hash behind as
    a stream's head, or the next write would link to an event that is not in the store.
    """

    def __init__(self, transcoder: Transcoder, heads_maxsize: int = 100_000):
        super().__init__(transcoder=transcoder)
        self.lookup: Callable[[UUID, int], str] | None = None
        self.shredder: Any = None  # hub.shred.Shredder: seals personal fields per customer
        self._heads: OrderedDict[UUID, tuple[int, str]] = OrderedDict()
        self._heads_maxsize = heads_maxsize
        self._lock = threading.Lock()
        self._writing = threading.local()

    def _pending(self) -> dict[UUID, tuple[int, str]]:
        pending: dict[UUID, tuple[int, str]] | None = getattr(self._writing, "heads", None)
        if pending is None:
            pending = self._writing.heads = {}
        return pending

    def _remember(self, originator_id: UUID, version: int, digest: str) -> None:
        with self._lock:
            self._heads[originator_id] = (version, digest)
            self._heads.move_to_end(originator_id)
            if len(self._heads) > self._heads_maxsize:
                self._heads.popitem(last=False)

    def head(self, originator_id: UUID) -> tuple[int, str] | None:
        """The (version, hash) of the stream's last event this process read or wrote."""
        with self._lock:
            return self._heads.get(originator_id)

    def expect_head(self, originator_id: UUID, version: int, digest: str) -> None:
        """The hash the next write to this stream (in this thread) follows, if at `version`."""
        self._pending().setdefault(originator_id, (version, digest))

    def commit_heads(self) -> dict[UUID, tuple[int, str]]:
        """The writes of this thread committed: their hashes are now the streams' heads."""
        pending = self._pending()
        self._writing.heads = {}
        with self._lock:
            for originator_id, head in pending.items():
                self._heads[originator_id] = head
                self._heads.move_to_end(originator_id)
            while len(self._heads) > self._heads_maxsize:
                self._heads.popitem(last=False)
        return pending

    def discard_heads(self) -> None:
        self._writing.heads = {}

    def _prev_hash(self, originator_id: UUID, version: int) -> str:
        if version <= 1:
            return GENESIS
        head = self._pending().get(originator_id)
        if head is None or head[0] != version - 1:
            with self._lock:
                head = self._heads.get(originator_id)
        if head is not None and head[0] == version - 1:
            return head[1]
        assert self.lookup is not None, "HubMapper.lookup is not set"
        return self.lookup(originator_id, version - 1)

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        topic = get_topic(domain_event.__class__)
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        version = state.pop("originator_version")
        if isinstance(domain_event, Snapshot):
            if self.shredder is not None:
                plain = self.transcoder.encode(state.pop("state"))
                state[SEALED] = self.shredder.seal_whole(str(originator_id), plain)
            return StoredEvent(originator_id, version, topic, self.transcoder.encode(state))
        stream = str(originator_id)
        if self.shredder is not None:
            state = self.shredder.seal(topic, stream, state)
        canonical = dumps(state)
        prev = self._prev_hash(originator_id, version)
        digest = chain_hash(prev, stream, version, topic, canonical)
        self._pending()[originator_id] = (version, digest)
        return StoredEvent(
            originator_id, version, topic, with_chain(state, canonical, prev, digest)
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        cls = resolve_topic(stored_event.topic)
        state: dict[str, Any] = self.transcoder.decode(stored_event.state)
        links = state.pop(CHAIN, None)
        originator_id = stored_event.originator_id
        if not isinstance(originator_id, UUID):
            originator_id = UUID(str(originator_id))
        if links is not None:
            self._remember(originator_id, stored_event.originator_version, links["hash"])
        if SEALED in state and issubclass(cls, Snapshot):
            plain = self.shredder.open_whole(str(originator_id), state.pop(SEALED))
            if plain is None:
                raise SnapshotUnreadable(originator_id)
            state["state"] = self.transcoder.decode(plain)
        elif self.shredder is not None:
            state = self.shredder.open(state)
        state["originator_id"] = originator_id
        state["originator_version"] = stored_event.originator_version
        state["timestamp"] = datetime.fromisoformat(state["timestamp"])
        domain_event = object.__new__(cls)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event  # type: ignore[no-any-return]
