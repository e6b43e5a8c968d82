"""The CSV column mapping of `hub import`: rows to envelope JSON, and mappings that cannot work."""

from __future__ import annotations

import pytest

from adapters.file_import import ColumnMapping
from hub.errors import InvalidInput


def test_dotted_fields_nest_and_fixed_values_fill_in() -> None:
    mapping = ColumnMapping.from_options(
        ["source.id=id", "data.total.amount=amount", "data.total.currency=cur"],
        ["type=order.placed", "source.channel=erp"],
    ).for_header(["id", "amount", "cur"])
    assert mapping.envelope_of({"id": "A-1", "amount": "9.90", "cur": "EUR"}) == {
        "type": "order.placed",
        "source": {"channel": "erp", "id": "A-1"},
        "data": {"total": {"amount": "9.90", "currency": "EUR"}},
    }


def test_list_fields_split_json_fields_parse_and_empty_cells_are_left_out() -> None:
    mapping = ColumnMapping.from_options(
        ["source.id=id", "in_reply_to=refs", "claims:json=claims", "data.summary=notes"], []
    ).for_header(["id", "refs", "claims", "notes"])
    doc = mapping.envelope_of(
        {
            "id": "c-1",
            "refs": "email:<a@x> email:<b@x>",
            "claims": '[{"subject": "s:1"}]',
            "notes": "  ",
        }
    )
    assert doc["in_reply_to"] == ["email:<a@x>", "email:<b@x>"]
    assert doc["claims"] == [{"subject": "s:1"}]
    assert "data" not in doc


def test_cell_that_is_not_json_names_field_and_column() -> None:
    mapping = ColumnMapping.from_options(["source.id=id", "claims:json=c"], []).for_header(
        ["id", "c"]
    )
    with pytest.raises(InvalidInput) as error:
        mapping.envelope_of({"id": "1", "c": "[oops"})
    assert error.value.field == "claims"
    assert "'c'" in error.value.errors[0][1]


def test_headers_that_are_field_paths_map_themselves_without_options() -> None:
    mapping = ColumnMapping().for_header(["source.id", "type", "customer.email", "comment"])
    assert mapping.columns == {
        "source.id": "source.id",
        "type": "type",
        "customer.email": "customer.email",
    }


def test_mapping_a_column_the_file_lacks_names_it() -> None:
    with pytest.raises(ValueError, match="columns not in the file: started"):
        ColumnMapping.from_options(["source.id=id", "occurred_at=started"], []).for_header(["id"])


def test_option_without_equals_sign_is_refused() -> None:
    with pytest.raises(ValueError, match="FIELD=COLUMN"):
        ColumnMapping.from_options(["source.id"], [])
