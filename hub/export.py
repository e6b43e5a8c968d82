"""Exports for auditors: the log (or some streams) as JSON lines with a sealed trailer, written
with constant memory, and their offline verification (`hub verify --file`)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import orjson

from hub.audit import Break, Report, StoredRecord, StreamChecker, is_touchpoint
from hub.codec import CHAIN, split_chain
from hub.store import HubRecorder


def export_line(position: int, stream: str, version: int, topic: str, state: bytes) -> bytes:
    """One line of an export: the stored event as it is, with what an auditor reads off it."""
    content = orjson.loads(state)  # no canonical re-encoding: the stored bytes go out as they are
    links = content.pop(CHAIN, None)
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
