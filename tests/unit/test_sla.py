"""The SLA policy: due times by kind and priority, business days, configured overrides."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.errors import InvalidInput
from projections.sla import SlaPolicy, add_business_days

MONDAY_9 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
FRIDAY_15 = datetime(2026, 11, 6, 15, 0, tzinfo=UTC)


def test_urgent_repair_is_due_in_four_hours() -> None:
    assert SlaPolicy().due("repair", "urgent", MONDAY_9) == datetime(2026, 11, 2, 13, tzinfo=UTC)


def test_normal_repair_is_due_in_three_days() -> None:
    assert SlaPolicy().due("repair", "normal", MONDAY_9) == datetime(2026, 11, 5, 9, tzinfo=UTC)


def test_reply_on_friday_afternoon_is_due_monday_afternoon() -> None:
    assert SlaPolicy().due("reply", None, FRIDAY_15) == datetime(2026, 11, 9, 15, tzinfo=UTC)


def test_message_at_the_weekend_counts_from_monday_morning() -> None:
    saturday = datetime(2026, 11, 7, 11, 0, tzinfo=UTC)
    assert add_business_days(saturday, 1) == datetime(2026, 11, 10, 0, 0, tzinfo=UTC)


def test_registration_confirmation_is_due_in_24_hours() -> None:
    assert SlaPolicy().due("registration", None, FRIDAY_15) == datetime(2026, 11, 7, 15, tzinfo=UTC)


def test_configured_rule_for_kind_and_priority_beats_the_defaults() -> None:
    policy = SlaPolicy({"repair:urgent": "2h", "complaint": "1d"})
    assert policy.due("repair", "urgent", MONDAY_9) == datetime(2026, 11, 2, 11, tzinfo=UTC)
    assert policy.due("complaint", "normal", MONDAY_9) == datetime(2026, 11, 3, 9, tzinfo=UTC)
    assert policy.due("complaint", "urgent", MONDAY_9) == datetime(2026, 11, 2, 13, tzinfo=UTC)


def test_a_duration_that_is_not_one_is_refused() -> None:
    with pytest.raises(InvalidInput):
        SlaPolicy({"repair": "soon"})
