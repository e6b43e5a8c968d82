"""Writing touchpoints: one, a batch (JSON array or NDJSON), and the dry run."""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.auth import PrincipalDep, Requires, require_channel
from api.deps import HubDep, SettingsDep
from api.metrics import MetricsDep
from api.problems import json_response, problem_document, problem_response
from hub.app import Accepted
from hub.envelope import Envelope, load_json, parse_envelope
from hub.errors import HubError, InvalidInput

router = APIRouter(prefix="/v1/touchpoints", tags=["touchpoints"])

Mode = Literal["live", "record"]


class TouchpointResult(BaseModel):
    touchpoint_id: str
    customer_id: str
    position: int
    duplicate: bool
    detected_conflicts: list[dict[str, Any]] = []


class CheckAnswer(BaseModel):
    ok: bool
    customer_id: str | None
    conflicts: list[dict[str, Any]]


PROBLEMS: dict[int | str, dict[str, Any]] = {
    409: {"description": "Conflict with the customer's history, or ambiguous identity"},
    413: {"description": "Body over the size limit"},
    422: {"description": "Invalid input; the problem document names the fields"},
}


@router.post(
    "",
    status_code=201,
    response_model=TouchpointResult,
    responses={200: {"description": "A repeated source key: the first result"}, **PROBLEMS},
    dependencies=[Requires("channel")],
)
async def post_touchpoint(
    request: Request, envelope: Envelope, principal: PrincipalDep, mode: Mode = "live"
) -> Response:
    """Append one touchpoint (201), or answer a repeated source key with the first result (200)."""
    require_channel(principal, [envelope.source.channel])
    return await record_single(request.app.state, envelope, mode)


async def record_single(state: Any, envelope: Envelope, mode: str) -> Response:
    """Record one touchpoint through the app's group commit (or alone) and count it: the
    route's answer; raises HubError."""
    payload, status = await record_single_answer(state, envelope, mode)
    return Response(payload, status_code=status, media_type="application/json")


async def record_single_answer(state: Any, envelope: Envelope, mode: str) -> tuple[bytes, int]:
    """`record_single`'s JSON body and status, which the plain-case fast path (`api/fast.py`)
    sends itself."""
    hub, committer, metrics = state.hub, state.committer, state.metrics
    channel = envelope.source.channel
    accepted: Accepted
    started = time.perf_counter()
    try:
        if committer is not None:
            # Shares a transaction with touchpoints arriving at the same moment (group commit).
            accepted = await committer.submit_async(envelope, mode)
        else:
            accepted = await run_in_threadpool(hub.record, envelope, mode)
    except HubError as error:
        metrics.count_one(error, channel)
        raise
    finally:
        metrics.appended("single", time.perf_counter() - started)
    metrics.count_one(accepted, channel)
    return orjson.dumps(accepted.as_dict()), 200 if accepted.duplicate else 201


BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Envelope"}}
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/batch", openapi_extra=BATCH_BODY, responses=PROBLEMS, dependencies=[Requires("channel")]
)
async def post_batch(
    request: Request,
    hub: HubDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    metrics: MetricsDep,
    mode: Mode = "live",
) -> Response:
    """Append many touchpoints in order (JSON array or NDJSON): a result per item."""
    body = await request.body()
    raw_items = _batch_items(body, request.headers.get("content-type", ""))
    if len(raw_items) > settings.max_batch_items:
        return problem_response(
            {
                "type": "/problems/batch-too-large",
                "title": "Batch too large",
                "status": 413,
                "detail": f"{len(raw_items)} items; at most {settings.max_batch_items}",
            }
        )
    channels = [_channel_of(raw) for raw in raw_items]
    # One foreign item refuses the whole request before anything is decided.
    require_channel(principal, [c for c in channels if c is not None])
    items: list[Envelope | HubError] = []
    for raw in raw_items:
        try:
            items.append(raw if isinstance(raw, HubError) else parse_envelope(raw))
        except InvalidInput as error:
            items.append(error)
    started = time.perf_counter()
    try:
        outcomes = await run_in_threadpool(hub.record_batch, items, mode)
    finally:
        metrics.appended("batch", time.perf_counter() - started)
    metrics.count(outcomes, channels)
    results: list[dict[str, Any]] = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, InvalidInput):
            outcome = _at_item(outcome, index)
        if isinstance(outcome, HubError):
            results.append({"status": outcome.status, "problem": problem_document(outcome)})
        else:
            results.append({"status": 200 if outcome.duplicate else 201, **outcome.as_dict()})
    summary = {
        "accepted": sum(r["status"] == 201 for r in results),
        "duplicates": sum(r["status"] == 200 for r in results),
        "rejected": sum(r["status"] >= 400 for r in results),
    }
    return json_response({"results": results, **summary})


@router.post(
    "/check",
    response_model=CheckAnswer,
    responses=PROBLEMS,
    dependencies=[Requires("agent", "channel")],
)
async def check_touchpoint(envelope: Envelope, hub: HubDep, principal: PrincipalDep) -> CheckAnswer:
    """Dry run of the consistency rules: would this touchpoint be accepted now? Appends nothing."""
    require_channel(principal, [envelope.source.channel])
    result = await run_in_threadpool(hub.check, envelope)
    return CheckAnswer(
        ok=result.ok,
        customer_id=result.customer_id,
        conflicts=[c.as_dict() for c in result.conflicts],
    )


def _batch_items(body: bytes, content_type: str) -> list[Any]:
    if "ndjson" in content_type or "jsonlines" in content_type:
        items: list[Any] = []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(load_json(line))
            except orjson.JSONDecodeError as error:
                items.append(InvalidInput("body", f"line {number} is not JSON: {error}"))
        return items
    try:
        decoded = load_json(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput("body", f"not JSON: {error}") from None
    if not isinstance(decoded, list):
        raise InvalidInput("body", "a batch is a JSON array of touchpoints (or NDJSON)")
    return decoded


def _channel_of(raw: Any) -> str | None:
    """The `source.channel` an item names, if it names one."""
    source = raw.get("source") if isinstance(raw, dict) else None
    channel = source.get("channel") if isinstance(source, dict) else None
    return channel if isinstance(channel, str) else None


def _at_item(error: InvalidInput, index: int) -> InvalidInput:
    (field, message), *more = error.errors
    return InvalidInput(f"[{index}].{field}", message, [(f"[{index}].{f}", m) for f, m in more])
