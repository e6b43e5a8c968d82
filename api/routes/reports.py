"""Read models across customers: open-item queues, conflicts, analytics, projection status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth import Requires
from api.deps import MinPosition, ProjectionsDep, SettingsDep, aware
from api.problems import json_response
from api.routes.views import now_text, projected
from hub.errors import InvalidInput
from projections import analytics, conflicts, open_items, reads
from projections.base import norm_time
from projections.store import Tx

router = APIRouter(prefix="/v1", tags=["queues and reports"])
DASHBOARD = [Requires("dashboard")]
Many = Annotated[list[str], Query()]


def _split(values: list[str]) -> list[str]:
    return [part for value in values for part in value.split(",") if part]


@router.get("/open-items", dependencies=DASHBOARD)
async def get_queue(
    projections: ProjectionsDep,
    settings: SettingsDep,
    kind: Many = [],  # noqa: B006
    channel: Many = [],  # noqa: B006
    assignee: str | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(description="next_after of the previous page")] = None,
    min_position: MinPosition = None,
) -> Response:
    """Open items across customers, most urgent first; overdue judged now."""
    now = now_text(projections, None)
    start = None
    if after:
        parts = after.split("|")
        if len(parts) != 3:
            raise InvalidInput("after", "not a next_after this API gave out")
        start = (parts[0], parts[1], parts[2])

    def query(tx: Tx) -> dict[str, Any]:
        items = open_items.queue(
            tx,
            now,
            kinds=_split(kind),
            channels=_split(channel),
            assignee=assignee,
            overdue=overdue,
            limit=limit,
            after=start,
        )
        following = None
        if len(items) == limit:
            last = items[-1]
            following = f"{last['due_at']}|{last['customer_id']}|{last['item_id']}"
        return {"open_items": items, "next_after": following}

    return await projected(projections, ("open_items",), min_position, settings.read_wait_s, query)


@router.get("/conflicts", dependencies=[Requires("dashboard", "auditor")])
async def get_conflicts(
    projections: ProjectionsDep,
    settings: SettingsDep,
    customer_id: str | None = None,
    rule: Many = [],  # noqa: B006
    outcome: Literal["rejected", "detected"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="next_before of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    min_position: MinPosition = None,
) -> Response:
    """Rejected attempts and contradictions detected in record mode, newest first."""
    aware("since", since)
    aware("until", until)

    def query(tx: Tx) -> dict[str, Any]:
        streams = reads.streams_of(tx, customer_id)[0] if customer_id else []
        return conflicts.conflicts(
            tx,
            streams=streams,
            rules=_split(rule),
            outcome=outcome,
            since=norm_time(since),
            until=norm_time(until),
            before=before,
            limit=limit,
        )

    views = ("conflicts", "profile") if customer_id else ("conflicts",)
    return await projected(projections, views, min_position, settings.read_wait_s, query)


@router.get("/analytics/touchpoints", dependencies=DASHBOARD)
async def get_touchpoint_counts(
    projections: ProjectionsDep,
    settings: SettingsDep,
    group_by: Many = ["channel"],  # noqa: B006
    since: Annotated[str | None, Query(description="first day, YYYY-MM-DD")] = None,
    until: Annotated[str | None, Query(description="last day, YYYY-MM-DD")] = None,
    min_position: MinPosition = None,
) -> Response:
    """Touchpoint counts by any of day, channel, type, product, region, agent."""
    dims = _split(group_by)
    unknown = [d for d in dims if d not in analytics.DIMENSIONS]
    if unknown:
        raise InvalidInput("group_by", f"unknown {unknown}; use {', '.join(analytics.DIMENSIONS)}")

    def query(tx: Tx) -> dict[str, Any]:
        return {"group_by": dims, "rows": analytics.touchpoint_counts(tx, dims, since, until)}

    return await projected(projections, ("analytics",), min_position, settings.read_wait_s, query)


@router.get("/analytics/service-levels", dependencies=DASHBOARD)
async def get_service_levels(
    projections: ProjectionsDep,
    settings: SettingsDep,
    since: datetime | None = None,
    until: datetime | None = None,
    by: Literal["all", "agent"] = "all",
    min_position: MinPosition = None,
) -> Response:
    """First-response and resolution times (median, p90) and SLA breach rate, of items opened
    in the window; per agent (the item's assignee) with `by=agent`."""
    now = now_text(projections, None)
    window = norm_time(aware("since", since)), norm_time(aware("until", until))

    def query(tx: Tx) -> dict[str, Any]:
        levels = analytics.service_levels(tx, now, *window, by_agent=by == "agent")
        return {"by": by, "levels": levels}

    return await projected(projections, ("open_items",), min_position, settings.read_wait_s, query)


@router.get("/projections", dependencies=DASHBOARD)
async def get_projection_status(projections: ProjectionsDep) -> Response:
    """Each projection's position and lag behind the log."""
    status = await run_in_threadpool(projections.status)
    return json_response({"projections": status, "following": projections.following})
