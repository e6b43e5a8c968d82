"""Audit: checking hash-chained streams and exports, and what the company had told a customer.

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Notification

from hub.codec import GENESIS, chain_hash, split_chain
from hub.identity import source_digest
from hub.state import CustomerState
from hub.store import HubRecorder

REORDER_REACH = 1000  # how far from its place a moved event is looked for


@dataclass(frozen=True)
class StoredRecord:
    """One stored event as verification sees it."""

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
        self.report.streams += 1
        if self.head is not None:
            self.report.seal(self.stream, self.head)
        if not self.touchpoints:
            return
        found = keys([key for key, _, _ in self.touchpoints])
        for key, version, position in self.touchpoints:
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


def _versions(low: int, high: int) -> str:
    return f"version {low}" if low == high else f"versions {low}-{high}"


def verify_streams(
    records: Iterable[StoredRecord],
    keys: Callable[[list[str]], dict[str, tuple[str, int | None]]],
    report: Report | None = None,
) -> Report:
    """Verify events given stream by stream, each in version order."""
    report = report or Report()
    checker: StreamChecker | None = None
    for record in records:
        if checker is None or checker.stream != record.stream:
            if checker is not None:
                checker.finish(keys)
            checker = StreamChecker(record.stream, report)
        checker.check(record)
    if checker is not None:
        checker.finish(keys)
    return report


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


# -- exports -------------------------------------------------------------------------------


def export_line(position: int, stream: str, version: int, topic: str, state: bytes) -> bytes:
    """One line of an export: the stored event as it is, with what an auditor reads off it."""
    content, links, _ = split_chain(state)
    doc: dict[str, Any] = {
        "position": position,
        "customer_id": stream,
        "version": version,
        "topic": topic,
        "recorded_at": content.get("timestamp"),
        "hash": links.get("hash") if links else None,
        "prev_hash": links.get("prev") if links else None,
        "stored": orjson.Fragment(state),
    }
    if is_touchpoint(topic, content):
        doc["source"] = {"channel": content["channel"], "id": content["source_id"]}
    return orjson.dumps(doc) + b"\n"


class ExportWriter:
    """Writes export lines and, at the end, a trailer sealing every byte written."""

    def __init__(self, write: Callable[[bytes], Any]):
        self.write = write
        self.digest = hashlib.sha256()
        self.lines = 0

    def add(self, line: bytes) -> None:
        self.digest.update(line)
        self.lines += 1
        self.write(line)

    def close(self) -> None:
        trailer = {"export": {"lines": self.lines, "sha256": self.digest.hexdigest()}}
        self.write(orjson.dumps(trailer) + b"\n")


def verify_export(lines: Iterator[bytes]) -> Report:
    """Verify an export file offline: every chain, every line's fields, and the trailer."""
    report = Report()
    checkers: dict[str, StreamChecker] = {}
    digest = hashlib.sha256()
    count = 0
    last_position = 0
    trailer: dict[str, Any] | None = None
    for number, line in enumerate(lines, start=1):
        if trailer is not None:
            report.breaks.append(Break("edited", "", None, None, f"line {number} after trailer"))
            break
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            report.breaks.append(Break("unreadable", "", None, None, f"line {number}: {error}"))
            digest.update(line)
            count += 1
            continue
        if isinstance(doc, dict) and set(doc) == {"export"}:
            trailer = doc["export"]
            continue
        digest.update(line)
        count += 1
        _check_export_line(number, doc, line, last_position, report, checkers)
        if isinstance(doc, dict) and isinstance(doc.get("position"), int):
            last_position = doc["position"]
    for checker in checkers.values():
        checker.report.streams += 1
        if checker.head is not None:
            report.seal(checker.stream, checker.head)
    if trailer is None:
        report.breaks.append(Break("removed", "", None, None, "the export has no trailer"))
    elif trailer.get("lines") != count or trailer.get("sha256") != digest.hexdigest():
        report.breaks.append(
            Break(
                "edited",
                "",
                None,
                None,
                f"the trailer seals {trailer.get('lines')} lines with another digest than "
                f"the {count} lines present",
            )
        )
    return report


def _check_export_line(
    number: int,
    doc: Any,
    line: bytes,
    last_position: int,
    report: Report,
    checkers: dict[str, StreamChecker],
) -> None:
    try:
        stream, version, topic = str(doc["customer_id"]), int(doc["version"]), str(doc["topic"])
        position = int(doc["position"])
        stored = orjson.dumps(doc["stored"], option=orjson.OPT_SORT_KEYS)
    except (KeyError, TypeError, ValueError) as error:
        report.breaks.append(Break("unreadable", "", None, None, f"line {number}: {error!r}"))
        return
    if position <= last_position:
        report.breaks.append(
            Break("reordered", stream, version, position, f"line {number} is out of log order")
        )
    checker = checkers.setdefault(stream, StreamChecker(stream, report, anchored=True))
    record = StoredRecord(position, stream, version, topic, stored)
    checker.check(record)
    content, links, _ = split_chain(stored)
    derived = {
        "recorded_at": content.get("timestamp"),
        "hash": links.get("hash") if links else None,
        "prev_hash": links.get("prev") if links else None,
    }
    for name, value in derived.items():
        if doc.get(name) != value:
            report.breaks.append(
                Break("edited", stream, version, position, f"line {number}: `{name}` edited")
            )


# -- statements ----------------------------------------------------------------------------


def statements(
    records: Iterable[dict[str, Any]], state: CustomerState, as_of: datetime
) -> list[dict[str, Any]]:
    """Every claim and promise the company had told the customer by `as_of`, with its status.

    `records` are the customer's touchpoints recorded by then (oldest first); `state` the
    customer's state replayed to that moment (it knows which claims facts have overtaken).
    """
    told: list[dict[str, Any]] = []
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        base = {
            "touchpoint_id": record["touchpoint_id"],
            "type": record["type"],
            "channel": record["channel"],
            "actor": record.get("actor"),
            "occurred_at": record["occurred_at"],
            "recorded_at": record["recorded_at"],
        }
        for subject in record.get("supersedes", ()):
            if subject in latest:
                latest[subject].update(
                    status="superseded",
                    superseded_by=record["touchpoint_id"],
                    correction_reason=record.get("correction_reason"),
                )
        for claim in record.get("claims", ()):
            earlier = latest.get(claim["subject"])
            if earlier is not None and earlier["status"] == "in force":
                earlier["status"] = "replaced by a later claim"
            statement = {
                **base,
                "kind": "claim",
                "subject": claim["subject"],
                "value": claim["value"],
                "valid_until": claim.get("valid_until"),
                "status": "in force",
            }
            latest[claim["subject"]] = statement
            told.append(statement)
        if record["type"] == "promise.made":
            promise_id = record["data"]["promise_id"]
            kept = state.promises.get(promise_id, {}).get("kept", False)
            told.append(
                {
                    **base,
                    "kind": "promise",
                    "subject": f"promise:{promise_id}",
                    "value": record["data"].get("what"),
                    "due": record["data"].get("due"),
                    "status": "kept" if kept else "open",
                }
            )
    for subject, statement in latest.items():
        current = state.claims.get(subject)
        if statement["status"] != "in force" or current is None:
            continue
        if current.overtaken_by:
            statement.update(status="overtaken by a fact", overtaken_by=current.overtaken_by)
        elif not current.in_force_at(as_of):
            statement["status"] = "expired"
    return told


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
    verify_streams(_scan(store, page), store.lookup_keys, report)
    orphan_breaks(store.orphan_keys(), report)
    return report


def _scan(store: HubRecorder, page: int) -> Iterator[StoredRecord]:
    after: tuple[str, int] | None = None
    while True:
        notifications = store.scan_streams(after, page)
        for notification in notifications:
            yield _record(notification)
        if len(notifications) < page:
            return
        last = notifications[-1]
        after = (str(last.originator_id), last.originator_version)


def export_store(
    store: HubRecorder,
    write: Callable[[bytes], Any],
    streams: list[UUID] | None = None,
    since: int = 0,
    page: int = 1000,
) -> int:
    """Write the log (or the given streams) after position `since`, in log order; a count."""
    writer = ExportWriter(write)
    if streams is not None:
        chosen = sorted(
            (n for stream in streams for n in store.stream(stream) if n.id > since),
            key=lambda n: n.id,
        )
        for n in chosen:
            writer.add(
                export_line(n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
            )
    else:
        start = since + 1
        while True:
            notifications = store.select_notifications(start, page)
            for n in notifications:
                writer.add(
                    export_line(n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
                )
            if len(notifications) < page:
                break
            start = notifications[-1].id + 1
    writer.close()
    return writer.lines
