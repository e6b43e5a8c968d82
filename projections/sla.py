"""The SLA policy: how long the company has for each kind of open item, by priority.

A policy maps `kind:priority`, `*:priority`, `kind` or `*` to a duration: `30m`, `4h`, `3d`
(calendar time) or `1bd` (business days, Monday to Friday, UTC). The most specific key wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from hub.errors import InvalidInput

DEFAULT_POLICY: dict[str, str] = {
    "*:urgent": "4h",
    "*:high": "1d",
    "*:low": "5d",
    "repair": "3d",
    "complaint": "3d",
    "question": "3d",
    "reply": "1bd",
    "callback": "1bd",
    "registration": "24h",
    "promise": "3d",
    "*": "3d",
}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d|bd)\s*$")
UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


class SlaPolicy:
    """Due times of open items; configured overrides on top of the defaults."""

    def __init__(self, overrides: Mapping[str, str] | None = None):
        self.rules = {**DEFAULT_POLICY, **(overrides or {})}
        for key, value in self.rules.items():
            if not DURATION.match(value):
                raise InvalidInput(f"sla.{key}", f"not a duration like 4h, 3d or 1bd: {value!r}")

    def rule(self, kind: str, priority: str | None) -> str:
        for key in (f"{kind}:{priority}", f"*:{priority}", kind, "*"):
            if key in self.rules:
                return self.rules[key]
        return "3d"

    def due(self, kind: str, priority: str | None, opened: datetime) -> datetime:
        match = DURATION.match(self.rule(kind, priority))
        assert match is not None
        amount, unit = float(match.group(1)), match.group(2)
        if unit == "bd":
            return add_business_days(opened, int(amount))
        return opened + amount * UNITS[unit]


def add_business_days(start: datetime, days: int) -> datetime:
    """`days` working days after `start`; a start at the weekend counts from Monday 00:00."""
    moment = start
    if moment.weekday() >= 5:
        moment = (moment + timedelta(days=7 - moment.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
    remaining = days
    while remaining > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            remaining -= 1
    return moment
