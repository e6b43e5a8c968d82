"""Webhook adapters: channel-native payloads mapped to touchpoints and recorded through the
batch path, answered with a result per touchpoint as `POST /v1/touchpoints/batch` does."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from adapters import email, servicedesk, shop, telephony
from api.auth import ADAPTER_CHANNELS, Requires
from api.deps import HubDep, SettingsDep
from api.metrics import Metrics, MetricsDep
from api.problems import json_response, problem_document
from hub.app import Hub, Outcome
from hub.envelope import Envelope, Proposal
from hub.errors import HubError, InvalidInput

router = APIRouter(prefix="/v1/adapters", tags=["adapters"])

Mode = Literal["live", "record"]

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A result per mapped touchpoint, in order, as from the batch path: "
        "`status` 201 recorded, 200 duplicate, 409/410/422 with its `problem`"
    },
    413: {"description": "Body over the size limit"},
    422: {
        "description": "The payload cannot be mapped; the problem document names the missing "
        "or malformed fields. Nothing is recorded."
    },
}

EMAIL_BODY = {
    "requestBody": {
        "required": True,
        "description": "The raw message, headers and body, as the mail server received it",
        "content": {
            "message/rfc822": {
                "schema": {"type": "string", "format": "binary"},
                "example": email.EXAMPLE,
            }
        },
    }
}


def outcome_result(outcome: Outcome) -> dict[str, Any]:
    """One item of a batch answer: 201 recorded, 200 duplicate, or the problem's status."""
    if isinstance(outcome, HubError):
        return {"status": outcome.status, "problem": problem_document(outcome)}
    return {"status": 200 if outcome.duplicate else 201, **outcome.as_dict()}


def batch_answer(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    results = [outcome_result(outcome) for outcome in outcomes]
    return {
        "results": results,
        "accepted": sum(r["status"] == 201 for r in results),
        "duplicates": sum(r["status"] == 200 for r in results),
        "rejected": sum(r["status"] >= 400 for r in results),
    }


def _propose_all(hub: Hub, envelopes: list[Envelope]) -> list[Proposal]:
    """Every mapped touchpoint checked before any is recorded: all or none are valid."""
    proposals = []
    for index, envelope in enumerate(envelopes):
        try:
            proposals.append(hub.propose(envelope))
        except InvalidInput as error:
            (field, message), *more = error.errors
            raise InvalidInput(
                f"touchpoints[{index}].{field}",
                message,
                [(f"touchpoints[{index}].{f}", m) for f, m in more],
            ) from None
    return proposals


def _record(hub: Hub, envelopes: list[Envelope], mode: str, metrics: Metrics) -> dict[str, Any]:
    proposals = _propose_all(hub, envelopes)
    started = time.perf_counter()
    try:
        outcomes = hub.record_batch(proposals, mode)
    finally:
        metrics.appended("adapter", time.perf_counter() - started)
    metrics.count(outcomes, [e.source.channel for e in envelopes])
    return batch_answer(outcomes)


async def _forward(hub: Hub, envelopes: list[Envelope], mode: str, metrics: Metrics) -> Response:
    return json_response(await run_in_threadpool(_record, hub, envelopes, mode, metrics))


def _for(adapter: str) -> Any:
    """Who may post to an adapter: the key of the channel it records for (and admins)."""
    return [Requires(f"channel:{ADAPTER_CHANNELS[adapter]}")]


@router.post("/shop", responses=RESPONSES, dependencies=_for("shop"))
async def post_shop_order(
    payload: shop.OrderWebhook, hub: HubDep, metrics: MetricsDep, mode: Mode = "live"
) -> Response:
    """Record a shop order webhook (created or updated) as `order.placed` and its status."""
    return await _forward(hub, shop.to_envelopes(payload), mode, metrics)


@router.post("/email", openapi_extra=EMAIL_BODY, responses=RESPONSES, dependencies=_for("email"))
async def post_email(
    request: Request,
    hub: HubDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    mode: Mode = "live",
) -> Response:
    """Record a raw RFC 5322 message as `email.received` or, from a company domain, `email.sent`."""
    raw = await request.body()
    return await _forward(hub, email.to_envelopes(raw, settings.company_domains), mode, metrics)


@router.post("/telephony", responses=RESPONSES, dependencies=_for("telephony"))
async def post_call_record(
    payload: telephony.CallRecord, hub: HubDep, metrics: MetricsDep, mode: Mode = "live"
) -> Response:
    """Record a call detail record as `call.inbound` or `call.outbound`."""
    return await _forward(hub, telephony.to_envelopes(payload), mode, metrics)


@router.post("/servicedesk", responses=RESPONSES, dependencies=_for("servicedesk"))
async def post_ticket_event(
    payload: servicedesk.TicketEvent, hub: HubDep, metrics: MetricsDep, mode: Mode = "live"
) -> Response:
    """Record a service desk ticket event (created, updated, solved) as service touchpoints."""
    return await _forward(hub, servicedesk.to_envelopes(payload), mode, metrics)
