"""`hub import`: JSONL and CSV files recorded through the batch path on every store,
idempotent on re-import, with broken lines reported and the rest imported."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.file_import import ColumnMapping, Summary, import_file
from api.cli import main
from hub.app import Hub
from hub.identity import identity_key
from tests.factories import money, raw_touchpoint
from tests.stores import cli_env


def history_line(n: int) -> dict[str, Any]:
    return raw_touchpoint(
        source={"channel": "import", "id": f"legacy-{n}"},
        type="note.added",
        occurred_at=f"2025-{n % 12 + 1:02d}-{n % 28 + 1:02d}T10:00:00Z",
        customer={"email": f"customer{n % 2000}@example.com"},
        data={"text": f"note {n} from the old CRM"},
    )


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(
        b"".join(
            (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
        )
    )
    return path


def run(hub: Hub, path: Path, **options: Any) -> tuple[Summary, list[dict[str, Any]]]:
    rejects = path.with_suffix(".rejects")
    with rejects.open("wb") as out:
        summary = import_file(hub, path, rejects=out, **options)
    return summary, [orjson.loads(line) for line in rejects.read_bytes().splitlines()]


def position(hub: Hub) -> int:
    return hub.recorder.max_notification_id() or 0


def test_ten_thousand_lines_import_and_a_second_import_adds_nothing(
    hub: Hub, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "history.jsonl", [history_line(n) for n in range(10_000)])
    summary, rejects = run(hub, path)
    assert (summary.accepted, summary.duplicates, summary.rejected) == (10_000, 0, 0)
    assert rejects == []
    assert hub.find_customer(identity_key("email", "customer1999@example.com")) is not None
    after_first = position(hub)

    again, _ = run(hub, path)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 10_000, 0)
    assert position(hub) == after_first


def test_broken_lines_are_reported_with_line_numbers_and_the_rest_imports(
    hub: Hub, tmp_path: Path
) -> None:
    lines: list[Any] = [history_line(n) for n in range(1, 9)]
    lines[2] = b'{"source": {"channel": "import", "id": "legacy-3"}, "type": '  # cut short
    lines[5] = {**history_line(6), "type": "order.teleported"}
    path = write_jsonl(tmp_path / "history.jsonl", [*lines[:4], b"", *lines[4:]])
    summary, rejects = run(hub, path, batch_size=3)
    assert (summary.accepted, summary.rejected) == (6, 2)
    assert [r["line"] for r in rejects] == [3, 7]  # the blank line 5 is skipped, not counted
    assert rejects[0]["problem"]["errors"][0]["field"] == "body"
    assert rejects[1]["problem"]["errors"][0]["field"] == "type"
    assert rejects[1]["problem"]["status"] == 422

    before = position(hub)
    again, rejected_again = run(hub, path)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 6, 2)
    assert [r["line"] for r in rejected_again] == [3, 7]
    assert position(hub) == before


def test_a_number_beyond_64_bits_is_a_reported_line_not_a_rounded_value(
    hub: Hub, tmp_path: Path
) -> None:
    """orjson reads 2**64 as a float: the line was imported with the number rounded. It is
    rejected now, naming the place, and the rest imports."""
    big = orjson.dumps(history_line(2)).replace(b'"data":{', b'"data":{"n":18446744073709551616,')
    path = write_jsonl(tmp_path / "numbers.jsonl", [history_line(1), big, history_line(3)])
    summary, rejects = run(hub, path)
    assert (summary.accepted, summary.rejected) == (2, 1)
    assert [r["line"] for r in rejects] == [2]
    assert rejects[0]["problem"]["errors"][0] == {
        "field": "data.n",
        "message": "a number beyond 64 bits",
    }


def quote(n: int, price: str) -> dict[str, Any]:
    return raw_touchpoint(
        source={"channel": "sales", "id": f"q-{n}"},
        type="quote.given",
        customer={"email": "buyer@example.com"},
        data={"sku": "SKU-1", "price": money(price)},
    )


def test_backfill_keeps_contradictions_as_detected_conflicts(hub: Hub, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "quotes.jsonl", [quote(1, "19.90"), quote(2, "24.90")])
    summary, rejects = run(hub, path, mode="record")
    assert (summary.accepted, summary.rejected, summary.detected) == (2, 0, 1)
    assert rejects == []


def test_live_import_rejects_the_contradiction_with_its_conflict(hub: Hub, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "quotes.jsonl", [quote(1, "19.90"), quote(2, "24.90")])
    summary, rejects = run(hub, path)
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert rejects[0]["line"] == 2
    assert rejects[0]["problem"]["conflicts"][0]["rule"] == "claim-vs-claim"


CALLS_CSV = """call_id,started,number,agent,seconds,notes
c-1,2026-10-01T09:00:00Z,+49 30 901820,agent-17,120,"Asked about delivery,
then about the invoice"
c-2,2026-10-02T10:30:00+02:00,+4930901821,agent-18,45,
c-3,yesterday,+4930901822,agent-18,60,bad date
c-4,2026-10-03T11:00:00Z,+4930901823,,300,no agent
"""

CALLS_MAPPING = ColumnMapping.from_options(
    [
        "source.id=call_id",
        "occurred_at=started",
        "customer.phone=number",
        "actor.id=agent",
        "data.duration_s=seconds",
        "data.summary=notes",
    ],
    ["source.channel=phone", "type=call.outbound", "actor.kind=agent"],
)


def test_csv_rows_map_to_envelopes_and_a_bad_cell_names_field_and_column(
    hub: Hub, tmp_path: Path
) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(CALLS_CSV)
    summary, rejects = run(hub, path, fmt="csv", mapping=CALLS_MAPPING)
    assert (summary.accepted, summary.rejected) == (3, 1)
    assert rejects[0]["line"] == 5  # the first row spans lines 2 and 3
    (error,) = rejects[0]["problem"]["errors"]
    assert error["field"] == "occurred_at"
    assert "'started'" in error["message"]
    customer = hub.find_customer(identity_key("phone", "+4930901820"))
    assert customer is not None
    (event,) = [e for e in hub.history(customer) if e.get("source_id") == "c-1"]
    assert event["data"] == {
        "summary": "Asked about delivery,\nthen about the invoice",
        "duration_s": 120,
    }


def test_csv_without_a_source_id_mapping_is_refused_before_anything_is_recorded(
    hub: Hub, tmp_path: Path
) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(CALLS_CSV)
    mapping = ColumnMapping.from_options(["occurred_at=started"], ["type=call.outbound"])
    with pytest.raises(ValueError, match="source.id"):
        run(hub, path, fmt="csv", mapping=mapping)
    assert position(hub) == 0


@pytest.fixture
def on_test_store(store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`hub` commands run in this test use the test's store."""
    for name, value in cli_env(store_env).items():
        monkeypatch.setenv(name, value)


def test_command_imports_writes_rejects_and_exits_1_when_lines_are_rejected(
    on_test_store: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_jsonl(tmp_path / "h.jsonl", [history_line(1), b"not json", history_line(2)])
    assert main(["import", str(path), "--no-progress"]) == 1
    assert "2 accepted, 0 duplicate, 1 rejected (invalid-input 1" in capsys.readouterr().out
    (reject,) = (tmp_path / "h.jsonl.rejects.jsonl").read_bytes().splitlines()
    assert orjson.loads(reject)["line"] == 2

    path.write_bytes(orjson.dumps(history_line(1)) + b"\n")
    assert main(["import", str(path), "--no-progress"]) == 0
    assert "0 accepted, 1 duplicate, 0 rejected" in capsys.readouterr().out
    assert not (tmp_path / "h.jsonl.rejects.jsonl").exists()


def test_command_imports_csv_with_a_mapping_file(
    on_test_store: None,
    make_hub: Callable[..., Hub],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(CALLS_CSV)
    mapping = tmp_path / "calls.mapping.json"
    mapping.write_bytes(orjson.dumps({"map": CALLS_MAPPING.columns, "set": CALLS_MAPPING.values}))
    code = main(["import", str(path), "--mapping", str(mapping), "--no-progress"])
    assert code == 1
    assert "3 accepted, 0 duplicate, 1 rejected" in capsys.readouterr().out
    hub = make_hub()
    assert hub.find_customer(identity_key("phone", "+4930901823")) is not None
