"""Dashboard pages for leads and auditors: conflicts (blocked and detected, by rule and
channel) and analytics (touchpoints by channel and day, response and resolution times, SLA
breach rate), with charts drawn on the server."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api import charts
from api.auth import Requires
from api.deps import ProjectionsDep
from api.pages import head, page, read
from projections import analytics, conflicts, reads
from projections.base import norm_time
from projections.store import Tx

report_pages = APIRouter(prefix="/dashboard", dependencies=[Requires("dashboard", "auditor")])
router = report_pages


@report_pages.get("/conflicts")
async def conflicts_page(
    request: Request,
    projections: ProjectionsDep,
    rule: str = "",
    outcome: str = "",
    before: Annotated[int | None, Query()] = None,
) -> Response:
    """What was blocked and what was detected in history, by rule and channel."""
    chosen = outcome if outcome in ("rejected", "detected") else None

    def query(tx: Tx) -> dict[str, Any]:
        found = conflicts.conflicts(
            tx, rules=[rule] if rule else [], outcome=chosen, before=before, limit=40
        )
        ids = [c["customer_id"] for c in found["conflicts"] if c["customer_id"]]
        return {
            **found,
            "summary": reads.conflict_summary(tx),
            "names": reads.customer_names(tx, ids),
        }

    # The position before the read: an event landing meanwhile is announced, never missed.
    position = await run_in_threadpool(head, projections)
    found = await read(projections, query)
    summary = found["summary"]
    peak = max([sum(c.values()) for g in summary.values() for c in g.values()], default=1)
    following = None
    if found["next_before"] is not None:
        params = {k: v for k, v in (("rule", rule), ("outcome", outcome)) if v}
        following = "?" + urlencode({**params, "before": found["next_before"]})
    return page(
        request,
        "conflicts.html",
        **found,
        rule=rule,
        outcome=outcome,
        peak=peak,
        following=following,
        position=position,
        live=f"/dashboard/live?after={position}&every=5",
    )


@report_pages.get("/analytics")
async def analytics_page(
    request: Request, projections: ProjectionsDep, days: Annotated[int, Query(ge=7, le=400)] = 60
) -> Response:
    """Touchpoints by channel and day, response and resolution times, SLA breach rate."""
    clock = projections.hub.clock()
    first = (clock - timedelta(days=days - 1)).date().isoformat()
    now = norm_time(clock) or ""
    since = norm_time(clock - timedelta(days=days))

    def query(tx: Tx) -> dict[str, Any]:
        return {
            "rows": analytics.touchpoint_counts(tx, ["day", "channel"], first, None),
            "levels": analytics.service_levels(tx, now, since, None),
            "agents": analytics.service_levels(tx, now, since, None, by_agent=True),
        }

    # The position before the read: an event landing meanwhile is announced, never missed.
    position = await run_in_threadpool(head, projections)
    found = await read(projections, query)
    columns = [(clock - timedelta(days=n)).date().isoformat() for n in range(days - 1, -1, -1)]
    index = {d: i for i, d in enumerate(columns)}
    series: dict[str, list[int]] = {}
    for row in found["rows"]:
        if row["day"] in index:
            series.setdefault(row["channel"], [0] * days)[index[row["day"]]] += row["count"]
    levels = found["levels"].get("all")
    times = []
    if levels:
        for name, key, fill in (
            ("First response", "first_response", "#2f6fdb"),
            ("Resolution", "resolution", "#1c9a6b"),
        ):
            summary = levels[key]
            times.append(charts.Bar(name, summary["median_s"], summary["p90_s"], fill))
    agents = [
        charts.Bar(name or "unassigned", group["sla_breach_rate"] * 100, fill="#d2433b")
        for name, group in sorted(found["agents"].items())
        if group["sla_breach_rate"] is not None
    ]
    return page(
        request,
        "analytics.html",
        days=days,
        series=dict(sorted(series.items(), key=lambda kv: -sum(kv[1]))),
        totals={name: sum(values) for name, values in series.items()},
        by_day=charts.stacked_columns("Touchpoints per day by channel", columns, series),
        times=charts.horizontal_bars("Median time (tick: p90)", times, charts.duration),
        breach=charts.ring(
            "SLA breach rate",
            levels["sla_breach_rate"] if levels else None,
            f"{levels['sla_breached']} of {levels['items']} items" if levels else "no items",
        ),
        agents=charts.horizontal_bars("SLA breach rate per agent", agents, lambda v: f"{v:.0f}%"),
        levels=levels,
        position=position,
        live=f"/dashboard/live?after={position}&every=30",
    )
