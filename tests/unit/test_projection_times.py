"""Times in the views: fixed-width UTC text, so text order is time order in both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from projections.base import _fixed_width, _norm_text, norm_time


def test_times_are_fixed_width_utc_text_with_microseconds() -> None:
    assert norm_time("2026-10-03T06:05:06.5+02:00") == "2026-10-03T04:05:06.500000Z"
    assert norm_time(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000000Z"  # naive is UTC


def test_years_before_1000_keep_four_digits_so_text_order_is_time_order() -> None:
    early, late = norm_time(datetime(999, 12, 31, tzinfo=UTC)), norm_time("2026-01-01T00:00Z")
    assert early == "0999-12-31T00:00:00.000000Z"
    assert early is not None and late is not None and early < late


def test_an_offset_past_the_end_of_time_gives_the_end_it_names() -> None:
    behind = timezone(timedelta(hours=-5))
    assert norm_time(datetime(9999, 12, 31, 23, tzinfo=behind)) == "9999-12-31T23:59:59.999999Z"


def test_stored_utc_times_rewritten_as_text_equal_the_parsed_conversion() -> None:
    # Stored times take a shortcut (text, not parsing); it must give the parser's answer.
    moments = [
        datetime(2026, 12, 3, 7, 50, 51, 123456, tzinfo=UTC),
        datetime(2026, 12, 3, 7, 50, 51, tzinfo=UTC),  # isoformat leaves the fraction out
        datetime(2026, 12, 3, 7, 50, 51, 1, tzinfo=UTC),
        datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2))),  # not UTC: parsed
    ]
    for moment in moments:
        text = moment.isoformat()
        assert _norm_text(text) == _fixed_width(datetime.fromisoformat(text)), text
    assert _norm_text("2026-03-29T01:30:00+02:00") == "2026-03-28T23:30:00.000000Z"
