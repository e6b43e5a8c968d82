"""Customers: look-up by identity, the raw history, merge and unmerge (the profile and the
other read models are in api/routes/views.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import Requires
from api.deps import HubDep, aware
from hub.errors import CustomerNotFound, InvalidInput
from hub.identity import identity_key, normalise_account, normalise_email, normalise_phone

router = APIRouter(prefix="/v1/customers", tags=["customers"])
ADMIN = [Requires("admin")]


class CustomerFound(BaseModel):
    customer_id: str
    identity: str


class MergeRequest(BaseModel):
    from_: str = Field(alias="from", description="id of the customer merged into this one")


class MergeResult(BaseModel):
    customer_id: str
    merged: str
    position: int


@router.get(
    "",
    response_model=CustomerFound,
    responses={404: {"description": "Unknown"}},
    dependencies=[Requires("agent", "dashboard", "auditor")],
)
async def find_customer(
    hub: HubDep,
    email: str | None = None,
    phone: str | None = None,
    account: str | None = None,
) -> CustomerFound:
    """Look a customer up by one identity: email, phone or account."""
    given = [(k, v) for k, v in (("email", email), ("phone", phone), ("account", account)) if v]
    if len(given) != 1:
        raise InvalidInput("query", "give exactly one of email, phone, account")
    kind, raw = given[0]
    if kind == "email":
        value = normalise_email(raw, "email")
    elif kind == "phone":
        value = normalise_phone(raw, hub.default_region, "phone")
    else:
        value = normalise_account(raw, "account")
    identity = identity_key(kind, value)
    customer_id = await run_in_threadpool(hub.find_customer, identity)
    if customer_id is None:
        raise CustomerNotFound(identity)
    return CustomerFound(customer_id=customer_id, identity=identity)


@router.get("/{customer_id}/history", dependencies=[Requires("auditor")])
async def get_history(
    customer_id: str,
    hub: HubDep,
    as_of: Annotated[
        datetime | None, Query(description="only what the hub had recorded by then")
    ] = None,
) -> dict[str, Any]:
    """Raw events of the customer (and of customers merged into it), for auditors."""
    events = await run_in_threadpool(hub.history, customer_id, aware("as_of", as_of))
    return {"customer_id": customer_id, "events": events}


@router.post("/{customer_id}/merge", response_model=MergeResult, dependencies=ADMIN)
async def merge(customer_id: str, request: MergeRequest, hub: HubDep) -> MergeResult:
    """Merge another customer (`from`) into this one; reversible by unmerge."""
    position = await run_in_threadpool(hub.merge, customer_id, request.from_)
    return MergeResult(customer_id=customer_id, merged=request.from_, position=position)


@router.post("/{customer_id}/unmerge", response_model=MergeResult, dependencies=ADMIN)
async def unmerge(customer_id: str, request: MergeRequest, hub: HubDep) -> MergeResult:
    """Undo a merge: both customers stand as they were; what arrived meanwhile stays here."""
    position = await run_in_threadpool(hub.unmerge, customer_id, request.from_)
    return MergeResult(customer_id=customer_id, merged=request.from_, position=position)
