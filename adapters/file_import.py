"""`hub import FILE`: touchpoints from a JSONL file of envelopes or a CSV file with a column
mapping, recorded in batches through `Hub.record_batch` (the path HTTP batches take).

Idempotent by source key: importing a file again records nothing new. A line that cannot be
read or is refused is written to the rejects file (one JSON object per line: `line` and the
`problem` document) and the rest of the file still imports.

CSV mapping: `--map FIELD=COLUMN` takes an envelope field from a column, `--set FIELD=VALUE`
gives it a fixed value; FIELD is a dotted path into the envelope (`source.id`,
`customer.email`, `data.duration_s`, `data.total.amount`). `in_reply_to` and
`acknowledged_open_items` split the cell on whitespace; a FIELD ending in `:json` reads the
cell as JSON (`claims:json`). Empty cells are left out. `--mapping FILE` reads the same from
JSON: `{"map": {FIELD: COLUMN}, "set": {FIELD: VALUE}}`. Without any `--map`, every column
whose header is a field path maps to that field.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from api.problems import problem_document
from hub.app import Accepted, Hub
from hub.collect import collect_if_due, few_collections
from hub.envelope import Envelope, load_json, parse_envelope
from hub.errors import HubError, InvalidInput
from hub.settings import Settings

LIST_FIELDS = frozenset({"in_reply_to", "acknowledged_open_items"})
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


@dataclass(frozen=True)
class ColumnMapping:
    """How a CSV row becomes an envelope: fields from columns, and fixed fields."""

    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_options(
        cls, maps: list[str], sets: list[str], mapping_file: Path | None = None
    ) -> ColumnMapping:
        columns: dict[str, str] = {}
        values: dict[str, str] = {}
        if mapping_file is not None:
            loaded = orjson.loads(mapping_file.read_bytes())
            if not isinstance(loaded, dict):
                raise ValueError(f"{mapping_file}: a JSON object with `map` and `set` is expected")
            columns.update({str(k): str(v) for k, v in (loaded.get("map") or {}).items()})
            values.update({str(k): v for k, v in (loaded.get("set") or {}).items()})
        for option, into in ((maps, columns), (sets, values)):
            for pair in option:
                name, sep, value = pair.partition("=")
                if not sep or not name.strip():
                    raise ValueError(f"{pair!r}: write FIELD=COLUMN (or FIELD=VALUE for --set)")
                into[name.strip()] = value.strip() if into is columns else value
        return cls(columns, values)

    def for_header(self, header: list[str]) -> ColumnMapping:
        """This mapping checked against the file's header (or made from it, if empty)."""
        columns = self.columns or {name: name for name in header if _is_field_path(name)}
        missing = [column for column in columns.values() if column not in header]
        if missing:
            raise ValueError(
                f"columns not in the file: {', '.join(missing)}; it has: {', '.join(header)}"
            )
        if "source.id" not in columns and "source.id" not in self.values:
            raise ValueError(
                "map source.id to the column holding each row's id in its channel "
                "(the source key makes re-imports idempotent)"
            )
        return ColumnMapping(columns, self.values)

    def envelope_of(self, row: dict[str, str]) -> dict[str, Any]:
        """The envelope (as JSON) of one row; a cell that is not JSON raises InvalidInput."""
        doc: dict[str, Any] = {}
        for path, value in self.values.items():
            _put(doc, path, value, path)
        for path, column in self.columns.items():
            cell = row.get(column)
            if cell is not None and cell.strip():
                _put(doc, path, cell.strip(), column)
        return doc


def _is_field_path(name: str) -> bool:
    head = name.split(".", 1)[0].removesuffix(":json")
    return head in Envelope.model_fields


def _put(doc: dict[str, Any], path: str, value: Any, column: str) -> None:
    if path.endswith(":json"):
        path = path.removesuffix(":json")
        try:
            value = load_json(value) if isinstance(value, str) else value
        except orjson.JSONDecodeError as error:
            raise InvalidInput(path, f"column {column!r} is not JSON: {error}") from None
    elif path in LIST_FIELDS and isinstance(value, str):
        value = value.split()
    *parents, last = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
        if not isinstance(doc, dict):
            raise InvalidInput(path, f"{part} is mapped both as a value and as an object")
    doc[last] = value


Item = tuple[int, Envelope | InvalidInput]


def _lines(stream: BinaryIO, seen: Callable[[int], None]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, start=1):
        seen(len(line))
        yield number, line


def jsonl_items(stream: BinaryIO, seen: Callable[[int], None]) -> Iterator[Item]:
    """Each non-blank line as an envelope, or the InvalidInput that says why it is not one."""
    for number, line in _lines(stream, seen):
        if not line.strip():
            continue
        try:
            yield number, parse_envelope(load_json(line))
        except orjson.JSONDecodeError as error:
            yield number, InvalidInput("body", f"not JSON: {error.msg} at column {error.colno}")
        except InvalidInput as error:
            yield number, error


def csv_items(
    stream: BinaryIO, mapping: ColumnMapping, seen: Callable[[int], None]
) -> Iterator[Item]:
    """Each CSV row, mapped to an envelope; the first row is the header."""
    text = (
        line.decode("utf-8-sig" if number == 1 else "utf-8", "replace")
        for number, line in _lines(stream, seen)
    )
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    checked = mapping.for_header(header)
    last = reader.line_num
    for row in reader:
        number, last = last + 1, reader.line_num  # a quoted cell may span several lines
        if not any(cell.strip() for cell in row):
            continue
        try:
            doc = checked.envelope_of(dict(zip(header, row, strict=False)))
            yield number, parse_envelope(doc)
        except InvalidInput as error:
            yield number, _naming_columns(error, checked)


def _naming_columns(error: InvalidInput, mapping: ColumnMapping) -> InvalidInput:
    def named(field_path: str, message: str) -> tuple[str, str]:
        column = mapping.columns.get(field_path) or mapping.columns.get(f"{field_path}:json")
        return field_path, f"{message} (column {column!r})" if column else message

    (first, message), *more = (named(f, m) for f, m in error.errors)
    return InvalidInput(first, message, more)


@dataclass
class Summary:
    """What an import did: counts, and the reasons lines were rejected."""

    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    detected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Accepted | HubError) -> None:
        self.lines += 1
        if isinstance(outcome, HubError):
            self.rejected += 1
            self.reasons[outcome.kind] += 1
        elif outcome.duplicate:
            self.duplicates += 1
        else:
            self.accepted += 1
            self.detected += bool(outcome.detected_conflicts)


def _batches(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_file(
    hub: Hub,
    path: Path,
    *,
    fmt: str = "jsonl",
    mode: str = "live",
    mapping: ColumnMapping | None = None,
    batch_size: int = 500,
    rejects: BinaryIO | None = None,
    seen: Callable[[int], None] = lambda _: None,
    done: Callable[[Summary], None] = lambda _: None,
) -> Summary:
    """Record every line of the file in batches; each rejected line goes to `rejects`."""
    summary = Summary()
    # No cyclic collections while lines are read and parsed between batches either (see
    # `hub ingest nats`): a full one still runs every `COLLECT_EVERY_S`.
    with path.open("rb") as stream, few_collections():
        items = (
            csv_items(stream, mapping or ColumnMapping(), seen)
            if fmt == "csv"
            else jsonl_items(stream, seen)
        )
        for batch in _batches(items, batch_size):
            collect_if_due()
            outcomes = hub.record_batch([item for _, item in batch], mode)
            for (number, _), outcome in zip(batch, outcomes, strict=True):
                summary.add(outcome)
                if isinstance(outcome, HubError) and rejects is not None:
                    reject = {"line": number, "problem": problem_document(outcome)}
                    rejects.write(orjson.dumps(reject) + b"\n")
            done(summary)
    return summary


# -- the command ---------------------------------------------------------------------------


def _progress(hidden: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        Task,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class LinesPerSecond(ProgressColumn):
        def render(self, task: Task) -> Text:
            lines = task.fields.get("lines", 0)
            elapsed = task.elapsed or 0.0
            rate = lines / elapsed if elapsed > 0 else 0.0
            return Text(f"{lines:,} lines  {rate:,.0f}/s", style="progress.data.speed")

    return Progress(
        TextColumn("[bold]import"),
        BarColumn(),
        TaskProgressColumn(),
        LinesPerSecond(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=hidden,
    )


def _format_of(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    fmt = FORMATS.get(args.file.suffix.lower())
    if fmt is None:
        raise ValueError(f"{args.file}: say --format jsonl or --format csv")
    return fmt


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    from api.app import build_hub

    try:
        fmt = _format_of(args)
        mapping = ColumnMapping.from_options(args.map, args.set, args.mapping)
        if fmt == "jsonl" and (mapping.columns or mapping.values):
            raise ValueError("--map, --set and --mapping are for CSV files")
        size = args.file.stat().st_size
    except (OSError, ValueError) as error:
        print(f"hub import: {error}", file=sys.stderr)
        return 2
    rejects_path: Path = args.rejects or args.file.with_name(args.file.name + ".rejects.jsonl")
    hub = build_hub(settings)
    started = time.monotonic()
    try:
        with rejects_path.open("wb") as rejects, _progress(args.no_progress) as progress:
            task = progress.add_task("import", total=size or 1, lines=0)
            summary = import_file(
                hub,
                args.file,
                fmt=fmt,
                mode=args.mode,
                mapping=mapping,
                batch_size=args.batch_size,
                rejects=rejects,
                seen=lambda n: progress.advance(task, n),
                done=lambda s: progress.update(task, lines=s.lines),
            )
    except (OSError, ValueError) as error:
        rejects_path.unlink(missing_ok=True)
        print(f"hub import: {error}", file=sys.stderr)
        return 2
    except HubError as error:  # the store went away: what is committed stays, re-run to resume
        print(f"hub import: {error}; run the same import again to resume", file=sys.stderr)
        return 2
    finally:
        hub.close()
    elapsed = time.monotonic() - started
    reasons = ", ".join(f"{kind} {count}" for kind, count in sorted(summary.reasons.items()))
    print(
        f"hub import: {summary.lines} lines in {elapsed:.1f}s "
        f"({summary.lines / elapsed if elapsed else 0:,.0f}/s): {summary.accepted} accepted, "
        f"{summary.duplicates} duplicate, {summary.rejected} rejected"
        + (f" ({reasons}; see {rejects_path})" if summary.rejected else "")
        + (f"; {summary.detected} with detected conflicts" if summary.detected else "")
    )
    if not summary.rejected:
        rejects_path.unlink(missing_ok=True)
    return 1 if summary.rejected else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def register(commands: Any) -> None:
    cmd = commands.add_parser(
        "import",
        help="record touchpoints from a JSONL file of envelopes or a CSV file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("file", type=Path, help="a .jsonl (one envelope per line) or .csv file")
    cmd.add_argument("--format", choices=["jsonl", "csv"], help="default: by the file's suffix")
    cmd.add_argument(
        "--mode",
        choices=["live", "record"],
        default="live",
        help="record: backfill, contradictions are kept as detected conflicts (default live)",
    )
    cmd.add_argument(
        "--map", action="append", default=[], metavar="FIELD=COLUMN", help="CSV: field from column"
    )
    cmd.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="CSV: fixed field"
    )
    cmd.add_argument("--mapping", type=Path, help='CSV: JSON file {"map": {...}, "set": {...}}')
    cmd.add_argument(
        "--batch-size", type=_positive, default=500, help="touchpoints per transaction (500)"
    )
    cmd.add_argument(
        "--rejects", type=Path, help="where rejected lines go (default FILE.rejects.jsonl)"
    )
    cmd.add_argument("--no-progress", action="store_true", help="no progress bar")
    cmd.set_defaults(run=run_import)
