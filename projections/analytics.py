"""Analytics: touchpoints counted by day, channel, type, product, region and agent; response
and resolution times and the SLA breach rate, read from the open-items view's closed items."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from projections.base import Event, View
from projections.open_items import REPLY_KINDS, closed_items
from projections.store import Table, Tx

DIMENSIONS = ("day", "channel", "type", "product", "region", "agent")
COUNTS = Table(
    "view_analytics_counts",
    (*((name, "text") for name in DIMENSIONS), ("n", "bigint")),
    key=DIMENSIONS,
)
RESOLVED_KINDS = ("repair", "complaint", "question")


def _dimensions(event: Event) -> tuple[str, ...]:
    data = event.doc["data"]
    actor = event.doc.get("actor") or {}
    product = data.get("product") or data.get("sku") or ""
    region = data.get("region") or ""
    agent = actor.get("id") if actor.get("kind") == "agent" else ""
    return (
        event.occurred_at[:10],
        event.doc["channel"],
        event.type or "",
        str(product),
        str(region),
        str(agent or ""),
    )


class Analytics(View):
    name = "analytics"
    tables = (COUNTS,)

    def apply(self, tx: Tx, events: Sequence[Event]) -> None:
        counts = Counter(_dimensions(e) for e in events if e.kind == "touchpoint")
        rows = [(*key, n) for key, n in sorted(counts.items())]
        tx.insert(
            COUNTS,
            rows,
            f"({', '.join(DIMENSIONS)}) DO UPDATE SET n = view_analytics_counts.n + excluded.n",
        )


def touchpoint_counts(
    tx: Tx, group_by: Sequence[str], since: str | None, until: str | None
) -> list[dict[str, Any]]:
    """Touchpoint counts grouped by the named dimensions, between two days (inclusive)."""
    where, params = ["1 = 1"], []
    if since:
        where.append("day >= ?")
        params.append(since[:10])
    if until:
        where.append("day <= ?")
        params.append(until[:10])
    columns = ", ".join(group_by)
    select = f"{columns}, " if group_by else ""
    grouping = f" GROUP BY {columns} ORDER BY {columns}" if group_by else ""
    rows = tx.execute(
        f"SELECT {select}SUM(n) AS n FROM {{s}}view_analytics_counts "
        f"WHERE {' AND '.join(where)}{grouping}",
        params,
    )
    return [
        {**{name: row[name] or None for name in group_by}, "count": int(row["n"] or 0)}
        for row in rows
    ]


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted values."""
    if not values:
        return None
    rank = max(1, -(-len(values) * share // 1))
    return values[int(rank) - 1]


def _summary(seconds: list[float]) -> dict[str, Any]:
    seconds.sort()
    return {
        "count": len(seconds),
        "median_s": percentile(seconds, 0.5),
        "p90_s": percentile(seconds, 0.9),
    }


def service_levels(
    tx: Tx, now: str, since: str | None, until: str | None, by_agent: bool = False
) -> dict[str, Any]:
    """First-response and resolution times (median, p90) and the SLA breach rate."""
    groups: dict[str, dict[str, Any]] = {}
    for row in closed_items(tx, since, until):
        key = (row["assignee"] or "") if by_agent else "all"
        group = groups.setdefault(
            key, {"first_response": [], "resolution": [], "due": 0, "breached": 0}
        )
        if row["closed_at"] is not None and row["seconds"] is not None:
            if row["kind"] in REPLY_KINDS:
                group["first_response"].append(row["seconds"])
            elif row["kind"] in RESOLVED_KINDS:
                group["resolution"].append(row["seconds"])
        if row["due_at"] is not None:
            group["due"] += 1
            if (row["closed_at"] or now) > row["due_at"]:
                group["breached"] += 1
    result = {}
    for key, group in sorted(groups.items()):
        result[key] = {
            "first_response": _summary(group["first_response"]),
            "resolution": _summary(group["resolution"]),
            "items": group["due"],
            "sla_breached": group["breached"],
            "sla_breach_rate": group["breached"] / group["due"] if group["due"] else None,
        }
    return result
