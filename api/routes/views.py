"""One customer's read models: profile, timeline, open items, claims (live or `as_of`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth import Requires
from api.deps import MinPosition, ProjectionsDep, SettingsDep, aware
from api.problems import json_response
from hub.settings import Settings
from projections import reads
from projections.base import norm_time
from projections.runner import Projections
from projections.store import Tx

router = APIRouter(prefix="/v1/customers", tags=["customer views"])
READERS = [Requires("agent", "dashboard")]  # a customer's read models
POSITION_HEADER = "X-Projection-Position"
AsOf = Annotated[
    datetime | None, Query(description="as the hub knew it then (replays the customer's streams)")
]


async def projected(
    projections: Projections,
    views: Sequence[str],
    min_position: int | None,
    timeout: float,
    query: Callable[[Tx], Any],
) -> Response:
    """Wait for the views to reach `min_position`, run the query, answer with the position."""
    position = await run_in_threadpool(projections.wait_for, views, min_position, timeout)
    doc = await run_in_threadpool(projections.read, query)
    return json_response(doc, headers={POSITION_HEADER: str(position)})


async def replayed(
    projections: Projections, customer_id: str, as_of: datetime, query: Callable[[Tx], Any]
) -> Response:
    """The query on the customer's streams replayed up to `as_of`."""
    head = await run_in_threadpool(projections.hub.recorder.max_notification_id)
    doc = await run_in_threadpool(projections.as_of, customer_id, as_of, query)
    return json_response(doc, headers={POSITION_HEADER: str(head or 0)})


def now_text(projections: Projections, as_of: datetime | None) -> str:
    return norm_time(as_of or projections.hub.clock()) or ""


async def customer_read(
    projections: Projections,
    settings: Settings,
    customer_id: str,
    views: Sequence[str],
    min_position: int | None,
    as_of: datetime | None,
    query: Callable[[Tx], Any],
) -> Response:
    """A customer's read: replayed up to `as_of` when given, else from the live views once
    they reached `min_position`."""
    moment = aware("as_of", as_of)
    if moment is not None:
        return await replayed(projections, customer_id, moment, query)
    return await projected(projections, views, min_position, settings.read_wait_s, query)


@router.get("/{customer_id}", dependencies=READERS)
async def get_profile(
    customer_id: str,
    projections: ProjectionsDep,
    settings: SettingsDep,
    min_position: MinPosition = None,
    as_of: AsOf = None,
) -> Response:
    """Profile: identities, contact data with provenance, consent, contacts, orders, open items."""

    def query(tx: Tx) -> dict[str, Any]:
        return reads.read_profile(tx, customer_id)

    return await customer_read(
        projections, settings, customer_id, reads.PROFILE_VIEWS, min_position, as_of, query
    )


@router.get("/{customer_id}/timeline", dependencies=READERS)
async def get_timeline(
    customer_id: str,
    projections: ProjectionsDep,
    settings: SettingsDep,
    channel: Annotated[list[str], Query()] = [],  # noqa: B006
    type: Annotated[list[str], Query()] = [],  # noqa: B006
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    min_position: MinPosition = None,
    as_of: AsOf = None,
) -> Response:
    """Every touchpoint across channels, newest first by occurred_at; cursor-paginated."""
    filters = {
        "channels": [c for value in channel for c in value.split(",") if c],
        "types": [t for value in type for t in value.split(",") if t],
        "since": norm_time(aware("since", since)),
        "until": norm_time(aware("until", until)),
        "limit": limit,
        "cursor": cursor,
    }

    def query(tx: Tx) -> dict[str, Any]:
        return reads.read_timeline(tx, customer_id, **filters)

    return await customer_read(
        projections, settings, customer_id, reads.TIMELINE_VIEWS, min_position, as_of, query
    )


@router.get("/{customer_id}/open-items", dependencies=READERS)
async def get_open_items(
    customer_id: str,
    projections: ProjectionsDep,
    settings: SettingsDep,
    include_closed: bool = False,
    min_position: MinPosition = None,
    as_of: AsOf = None,
) -> Response:
    """What the company owes this customer, with due times and overdue flags."""
    now = now_text(projections, aware("as_of", as_of))

    def query(tx: Tx) -> dict[str, Any]:
        return reads.read_open_items(tx, customer_id, now, include_closed)

    return await customer_read(
        projections, settings, customer_id, reads.OPEN_ITEM_VIEWS, min_position, as_of, query
    )


@router.get("/{customer_id}/claims", dependencies=READERS)
async def get_claims(
    customer_id: str,
    projections: ProjectionsDep,
    settings: SettingsDep,
    min_position: MinPosition = None,
    as_of: AsOf = None,
) -> Response:
    """Claims in force (and those that ended, with how), and promises with due dates."""
    now = now_text(projections, aware("as_of", as_of))

    def query(tx: Tx) -> dict[str, Any]:
        return reads.read_claims(tx, customer_id, now)

    return await customer_read(
        projections, settings, customer_id, reads.CLAIM_VIEWS, min_position, as_of, query
    )
