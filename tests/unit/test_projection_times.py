"""Times in the views: fixed-width UTC text, so text order is time order in both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from projections.base import norm_time


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
