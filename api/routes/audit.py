"""Audit: verifying a customer's hash chain and what the company had told them by a moment."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.auth import Requires
from api.deps import HubDep, aware

router = APIRouter(tags=["audit"])


@router.get("/v1/audit/verify", dependencies=[Requires("auditor")])
async def verify(
    hub: HubDep,
    customer_id: Annotated[str, Query(description="the customer whose streams to check")],
) -> dict[str, Any]:
    """Check one customer's hash-chained streams; every break named with its kind and place."""
    report = await run_in_threadpool(hub.verify, customer_id)
    return {"customer_id": customer_id, **report.as_dict()}


@router.get("/v1/customers/{customer_id}/statements", dependencies=[Requires("auditor")])
async def statements(
    customer_id: str,
    hub: HubDep,
    as_of: Annotated[
        datetime | None, Query(description="what had been said by then (default: now)")
    ] = None,
) -> dict[str, Any]:
    """Claims and promises the company had made to the customer by `as_of`, with who and where."""
    told = await run_in_threadpool(hub.statements, customer_id, aware("as_of", as_of))
    return {"customer_id": customer_id, "as_of": as_of, "statements": told}


@router.post("/v1/customers/{customer_id}/erase", dependencies=[Requires("admin")])
async def erase(customer_id: str, hub: HubDep) -> dict[str, Any]:
    """Erase the customer's personal data (and that of customers merged into it) by deleting
    their keys; the events, their hashes and the counts stay."""
    return await run_in_threadpool(hub.erase, customer_id)
