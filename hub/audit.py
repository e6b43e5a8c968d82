"""Audit: checking hash-chained streams (exports: hub/export.py; statements: hub/statements.py).

Verification is pure: it walks stored events (from the store or from an export file) and
names every break it finds. One finding per damaged event, so a single edit is reported once
and not as a cascade down the rest of the stream:

- `edited`: the event's content (or id, version, topic) no longer matches its own hash;
- `reordered`: the event's hash matches another version of the stream (rows swapped);
- `removed`: versions are missing before this one, or a source-key record points at an
  event that is gone;
- `broken-link`: the event does not name the previous event's hash (inserted, or the event
  before it replaced);
- `forged`: a touchpoint without the source-key record the hub writes in the same
  transaction (inserted outside the hub); `unchained`: an event with no chain links at all;
- `unreadable`: the stored bytes are not the JSON the hub writes.

A writer with database access who recomputes the chain *and* the key record can append an
event this cannot tell from a real one: anchor the heads (`hub verify` prints a digest of
every stream's head) somewhere the database's writers cannot reach.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from eventsourcing.persistence import Notification

from hub.codec import GENESIS, chain_hash, split_chain
from hub.customer import EVENT_CLASSES
from hub.identity import source_digest
from hub.store import HubRecorder

REORDER_REACH = 1000  # how far from its place a moved event is looked for
# How every stored event the hub writes begins: its chain links, then the other members.
CLEAN_LINKS = re.compile(
    rb'\{"_chain":\{"hash":"([0-9a-f]{64})","prev":"((?:[0-9a-f]{64})?)"\}(,|\}\Z)'
)
KEY_BATCH = 1000  # touchpoints whose key records are looked up in one query
TOUCHPOINT_TOPICS = frozenset(f"hub.customer:{cls.__name__}" for cls in EVENT_CLASSES.values())


class StoredRecord(NamedTuple):
    """One stored event as verification sees it (a tuple: millions are made in a run)."""

    position: int | None
    stream: str
    version: int
    topic: str
    state: bytes


@dataclass(frozen=True)
class Break:
    """One place where history does not verify."""

    kind: str
    stream: str
    version: int | None
    position: int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "customer_id": self.stream,
            "version": self.version,
            "position": self.position,
            "detail": self.detail,
        }


@dataclass
class Report:
    """What a verification looked at and what it found."""

    streams: int = 0
    events: int = 0
    breaks: list[Break] = field(default_factory=list)
    missing: set[tuple[str, int]] = field(default_factory=set)  # already named as removed
    heads_sum: int = 0  # an order-free digest of every stream's head: sum of their hashes

    def seal(self, stream: str, head: tuple[int, str]) -> None:
        line = f"{stream} {head[0]} {head[1]}".encode()
        self.heads_sum = (self.heads_sum + int.from_bytes(hashlib.sha256(line).digest())) % (
            1 << 256
        )

    @property
    def heads_digest(self) -> str:
        return f"{self.heads_sum:064x}"

    @property
    def ok(self) -> bool:
        return not self.breaks

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "streams": self.streams,
            "events": self.events,
            "heads_digest": self.heads_digest,
            "breaks": [b.as_dict() for b in self.breaks],
        }


def is_touchpoint(topic: str, content: dict[str, Any]) -> bool:
    return topic.startswith("hub.customer:") and "source_id" in content and "channel" in content


class StreamChecker:
    """Checks the events of one stream, given in version order (or log order for exports).

    `anchored` lets the first event seen start past version 1 (an export `--since` a
    position holds the tail of a stream whose beginning it does not carry).
    """

    def __init__(self, stream: str, report: Report, *, anchored: bool = False):
        self.stream = stream
        self.report = report
        self.anchored = anchored
        self.expected_version = 1
        self.expected_prev = GENESIS
        self.head: tuple[int, str] | None = None
        self.seen: set[str] = set()
        self.flagged: set[int] = set()  # versions already named in a break
        self.touchpoints: list[tuple[str, int, int | None]] = []  # (source key, version, pos)
        self.versions: set[int] = set()  # every version present, for orphaned key records
        self.guessed: dict[int, bytes] = {}  # touchpoints whose key was read off the bytes

    def _break(self, kind: str, record: StoredRecord | None, detail: str) -> None:
        if record is not None:
            self.flagged.add(record.version)
        self.report.breaks.append(
            Break(
                kind,
                self.stream,
                record.version if record else None,
                record.position if record else None,
                detail,
            )
        )

    def check(self, record: StoredRecord) -> None:
        self.report.events += 1
        self.versions.add(record.version)
        if self._clean(record):
            return
        try:
            content, links, canonical = split_chain(record.state)
        except orjson.JSONDecodeError as error:
            self._break("unreadable", record, f"stored bytes are not JSON: {error}")
            self._advance(record.version, None)
            return
        if links is None or not isinstance(links, dict) or "hash" not in links:
            self._break("unchained", record, "the event carries no hash-chain links")
            self._advance(record.version, None)
            return
        prev, stored_hash = str(links.get("prev", "")), str(links["hash"])
        if stored_hash in self.seen:
            self._break("forged", record, "a copy of an earlier event of this stream")
            self._advance(record.version, stored_hash)
            return
        first_here = self.head is None and self.anchored
        reported = False
        if record.version != self.expected_version and not first_here:
            reported = True
            if record.version > self.expected_version:
                missing = _versions(self.expected_version, record.version - 1)
                self.report.missing.update(
                    (self.stream, v) for v in range(self.expected_version, record.version)
                )
                self._break("removed", record, f"{missing} missing before this event")
            else:
                self._break("reordered", record, f"version {record.version} appears again")
        recomputed = chain_hash(prev, self.stream, record.version, record.topic, canonical)
        if recomputed != stored_hash:
            written_as = self._written_as(record, prev, canonical, stored_hash)
            if written_as is not None:
                self._break(
                    "reordered",
                    record,
                    f"the event stored as version {record.version} was written as "
                    f"version {written_as}",
                )
            else:
                self._break(
                    "edited", record, "content, id, version or topic no longer match its hash"
                )
        elif (
            not reported
            and not first_here
            and prev != self.expected_prev
            # after a swap the next event names a hash seen out of place: already reported
            and (self.head is None or prev not in self.seen)
        ):
            self._break(
                "broken-link",
                record,
                "the event does not follow the previous event's hash "
                "(an event inserted here, or the one before it replaced)",
            )
        if is_touchpoint(record.topic, content):
            key = source_digest(content["channel"], content["source_id"])
            self.touchpoints.append((key, record.version, record.position))
        self._advance(record.version, stored_hash)

    def _clean(self, record: StoredRecord) -> bool:
        """The common case, decided off the stored bytes: an event that follows its
        predecessor and matches its hash. Anything else (or any doubt) is left to `check`.

        The hub stores sorted-key JSON whose first member is `_chain`, so the bytes after
        that member are the canonical bytes that were hashed: a match proves them unchanged
        without re-encoding the event. A differing byte fails the match and `check` then
        decodes and names the break exactly as it always did."""
        state = record.state
        links = CLEAN_LINKS.match(state)
        if links is None:
            return False
        stored_hash, prev = links[1].decode(), links[2].decode()
        canonical = b"{" + state[links.end() :] if links[3] == b"," else b"{}"
        if (
            record.version != self.expected_version
            or prev != self.expected_prev
            or (self.head is None and self.anchored)
            or stored_hash in self.seen
        ):
            return False
        header = f"{self.expected_prev}\n{self.stream}\n{record.version}\n{record.topic}\n"
        if hashlib.sha256(header.encode() + canonical).hexdigest() != stored_hash:
            return False
        source = _source_off_bytes(canonical) if record.topic in TOUCHPOINT_TOPICS else None
        if source is not None:
            self.touchpoints.append((source_digest(*source), record.version, record.position))
            self.guessed[record.version] = canonical
        else:
            try:
                content = orjson.loads(canonical)
            except orjson.JSONDecodeError:
                return False
            if is_touchpoint(record.topic, content):
                key = source_digest(content["channel"], content["source_id"])
                self.touchpoints.append((key, record.version, record.position))
        self.expected_version = record.version + 1
        self.expected_prev = stored_hash
        self.head = (record.version, stored_hash)
        self.seen.add(stored_hash)
        return True

    def _written_as(
        self, record: StoredRecord, prev: str, canonical: bytes, stored_hash: str
    ) -> int | None:
        low = max(1, record.version - REORDER_REACH)
        for version in range(low, record.version + REORDER_REACH):
            if version != record.version and (
                chain_hash(prev, self.stream, version, record.topic, canonical) == stored_hash
            ):
                return version
        return None

    def _advance(self, version: int, stored_hash: str | None) -> None:
        self.expected_version = max(self.expected_version, version + 1)
        self.expected_prev = stored_hash or ""
        self.head = (version, stored_hash or "")
        if stored_hash:
            self.seen.add(stored_hash)

    def finish(self, keys: Callable[[list[str]], dict[str, tuple[str, int | None]]]) -> None:
        """Close the stream: check its touchpoints against the key index, seal its head."""
        self.close()
        if not self.touchpoints:
            return
        found = keys([key for key, _, _ in self.touchpoints])
        self.settle(_recorded_in(found, self.stream))
        missing = [key for key, _, _ in self.touchpoints if key not in found]
        if missing:
            found.update(keys(missing))
        self.check_keys(found)

    def settle(self, matches: Callable[[str, int], bool]) -> None:
        """Read again, with the JSON parser, each touchpoint whose key was read off the bytes
        and does not match its record (a `source_id` inside `data` may have been read)."""
        if not self.guessed:
            return
        settled = []
        for key, version, position in self.touchpoints:
            canonical = self.guessed.get(version)
            if canonical is not None and not matches(key, version):
                content = orjson.loads(canonical)
                if "channel" not in content or "source_id" not in content:
                    continue
                key = source_digest(content["channel"], content["source_id"])
            settled.append((key, version, position))
        self.touchpoints = settled
        self.guessed = {}

    def close(self) -> None:
        """Seal the stream's head; what is left to check is its touchpoints' key records."""
        self.report.streams += 1
        if self.head is not None:
            self.report.seal(self.stream, self.head)
        self.seen = set()

    def check_keys(
        self,
        found: dict[str, tuple[str, int | None]],
        touchpoints: list[tuple[str, int, int | None]] | None = None,
    ) -> None:
        """Each touchpoint must have the source-key record the hub wrote with it."""
        for key, version, position in self.touchpoints if touchpoints is None else touchpoints:
            if version in self.flagged:
                continue
            row = found.get(key)
            if row is None or row[0] != self.stream or row[1] != version:
                where = "no source-key record" if row is None else f"its key names {row}"
                self._break(
                    "forged",
                    StoredRecord(position, self.stream, version, "", b""),
                    f"touchpoint with {where}: not written by the hub",
                )


def _recorded_in(
    found: dict[str, tuple[str, int | None]], stream: str
) -> Callable[[str, int], bool]:
    def recorded(key: str, version: int) -> bool:
        return found.get(key) == (stream, version)

    return recorded


def _source_off_bytes(canonical: bytes) -> tuple[str, str] | None:
    """A touchpoint's channel and source id, read off its canonical bytes without decoding
    it: the first `"channel":"` is the top-level key (only `_personal` and `actor` sort before
    it); the first `"source_id":"` is checked against the key record, and read again by the
    parser if it does not match (`settle`). Escaped values are left to the parser."""
    at = canonical.find(b'"channel":"')
    start = canonical.find(b'"source_id":"')
    if at < 0 or start < 0:
        return None
    channel = canonical[at + 11 : canonical.find(b'"', at + 11)]
    source = canonical[start + 13 : canonical.find(b'"', start + 13)]
    if b"\\" in channel or b"\\" in source:
        return None
    return channel.decode(), source.decode()


def _versions(low: int, high: int) -> str:
    return f"version {low}" if low == high else f"versions {low}-{high}"


def verify_streams(
    records: Iterable[StoredRecord],
    keys: Callable[[list[str]], dict[str, tuple[str, int | None]]],
    report: Report | None = None,
) -> Report:
    """Verify events given stream by stream, each in version order.

    The key records of many streams are looked up at once (one query per ~1,000 touchpoints,
    not one per stream): finished streams wait in `pending` until then."""
    report = report or Report()
    checker: StreamChecker | None = None
    pending: list[StreamChecker] = []
    waiting = 0

    def flush() -> None:
        found = keys([key for c in pending for key, _, _ in c.touchpoints])
        for closed in pending:
            closed.settle(_recorded_in(found, closed.stream))
        missing = [key for c in pending for key, _, _ in c.touchpoints if key not in found]
        if missing:
            found.update(keys(missing))
        for closed in pending:
            closed.check_keys(found)
        pending.clear()

    for record in records:
        if checker is None or checker.stream != record.stream:
            if checker is not None:
                checker.close()
                if checker.touchpoints:
                    pending.append(checker)
                    waiting += len(checker.touchpoints)
                    if waiting >= KEY_BATCH:
                        flush()
                        waiting = 0
            checker = StreamChecker(record.stream, report)
        checker.check(record)
    if checker is not None:
        checker.close()
        pending.append(checker)
    if any(c.touchpoints for c in pending):
        flush()
    return report


def verify_all(
    records: Iterable[StoredRecord],
    key_rows: Iterable[tuple[str, int, str]],
    keys: Callable[[list[str]], dict[str, tuple[str, int | None]]],
    report: Report | None = None,
) -> Report:
    """Verify every stream and every source-key record of a store in one pass.

    Events come stream by stream and key records (owner, version, key) in the same order, so
    each stream's key records are merged in as the stream closes: no query per stream, and
    orphaned key records (their event removed) fall out of the same merge. Only a touchpoint
    whose record does not match is looked up, to name what its key points at instead."""
    report = report or Report()
    rows = _KeyRows(iter(key_rows))
    checker: StreamChecker | None = None
    for record in records:
        if checker is None or checker.stream != record.stream:
            if checker is not None:
                _close_with_keys(checker, rows, keys)
            checker = StreamChecker(record.stream, report)
        checker.check(record)
    if checker is not None:
        _close_with_keys(checker, rows, keys)
    orphan_breaks(((key, owner, version) for owner, version, key in rows.rest()), report)
    return report


class _KeyRows:
    """Key records in stream order, taken a stream at a time."""

    def __init__(self, rows: Iterator[tuple[str, int, str]]):
        self.rows = rows
        self.next = next(rows, None)

    def upto(self, stream: str) -> tuple[list[tuple[str, str, int]], dict[int, str]]:
        """Records of streams before `stream` (which has no events), and its own by version."""
        before: list[tuple[str, str, int]] = []
        mine: dict[int, str] = {}
        while self.next is not None and self.next[0] <= stream:
            owner, version, key = self.next
            if owner == stream:
                mine[version] = key
            else:
                before.append((key, owner, version))
            self.next = next(self.rows, None)
        return before, mine

    def rest(self) -> Iterator[tuple[str, int, str]]:
        while self.next is not None:
            yield self.next
            self.next = next(self.rows, None)


def _close_with_keys(
    checker: StreamChecker,
    rows: _KeyRows,
    keys: Callable[[list[str]], dict[str, tuple[str, int | None]]],
) -> None:
    checker.close()
    report, stream = checker.report, checker.stream
    before, mine = rows.upto(stream)
    orphan_breaks(before, report)
    checker.settle(lambda key, version: mine.get(version) == key)
    wrong = [t for t in checker.touchpoints if mine.get(t[1]) != t[0]]
    if wrong:
        checker.check_keys(keys([key for key, _, _ in wrong]), wrong)
    orphan_breaks(
        (
            (key, stream, version)
            for version, key in mine.items()
            if version not in checker.versions
        ),
        report,
    )
    checker.versions = set()


def orphan_breaks(orphans: Iterable[tuple[str, str, int]], report: Report) -> None:
    """Source-key records whose event is gone: the tail of a stream was removed."""
    for _key, owner, version in orphans:
        if (owner, version) in report.missing:
            continue
        report.breaks.append(
            Break(
                "removed",
                owner,
                version,
                None,
                f"a source key was recorded at version {version}, but that event is gone",
            )
        )


# -- over a store --------------------------------------------------------------------------


def _record(notification: Notification) -> StoredRecord:
    return StoredRecord(
        notification.id,
        str(notification.originator_id),
        notification.originator_version,
        notification.topic,
        bytes(notification.state),
    )


def merged_in(notifications: Iterable[Notification]) -> list[str]:
    """The customers merged into a stream (and not released), read off its stored events."""
    merged: list[str] = []
    for notification in notifications:
        kind = notification.topic.rpartition(".")[2]
        if kind not in ("Absorbed", "Released"):
            continue
        try:
            other = str(orjson.loads(notification.state)["other_id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if kind == "Absorbed":
            merged.append(other)
        elif other in merged:
            merged.remove(other)
    return merged


def verify_store(store: HubRecorder, streams: list[UUID] | None = None, page: int = 1000) -> Report:
    """Verify every stream of the store (or the given ones), with constant memory."""
    report = Report()
    if streams is not None:
        records: Iterable[StoredRecord] = (
            _record(n) for stream in streams for n in store.stream(stream)
        )
        verify_streams(records, store.lookup_keys, report)
        for stream in streams:
            orphan_breaks(store.orphan_keys(str(stream)), report)
        return report
    keys = (row for rows in store.scan_source_keys(page) for row in rows)
    return verify_all(_scan(store, page), keys, store.lookup_keys, report)


def _scan(store: HubRecorder, page: int) -> Iterator[StoredRecord]:
    make = StoredRecord._make
    for rows in store.scan_rows(page):
        yield from map(make, rows)
