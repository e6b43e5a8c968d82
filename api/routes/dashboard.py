"""The dashboard: server-rendered pages for queues and the customer 360° view (with the dry
run of a draft answer), the server-sent events that keep open pages current, and the
conflict and analytics pages of `dashboard_reports`.

Pages read the views through the same query functions as the JSON read API, and the
dry-run form asks the application service's `check`, as `POST /v1/touchpoints/check` does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api import present
from api.auth import Requires
from api.deps import HubDep, ProjectionsDep
from api.pages import HERE, head, page, read
from api.routes import customers as customer_routes
from api.routes import dashboard_reports
from hub.envelope import BUILT_IN_CHANNELS, parse_envelope
from hub.errors import CustomerNotFound, HubError, InvalidInput
from projections import open_items, reads
from projections.base import norm_time
from projections.runner import Projections
from projections.store import Tx

STATIC = {"dashboard.css": "text/css", "live.js": "text/javascript"}
# The free-text field each draft type carries its message in.
DRAFT_TYPES = {
    "call.outbound": "summary",
    "email.sent": "subject",
    "chat.message": "text",
    "sales.contacted": "summary",
    "note.added": "text",
}

router = APIRouter(include_in_schema=False)
agent_pages = APIRouter(prefix="/dashboard", dependencies=[Requires("agent", "dashboard")])
# Every page subscribes to its updates, so whoever may open one of them may listen.
live_updates = APIRouter(
    prefix="/dashboard", dependencies=[Requires("agent", "dashboard", "auditor")]
)


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/dashboard", status_code=303)


@router.get("/dashboard/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    return FileResponse(
        HERE / "static" / name,
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=300"},
    )


@agent_pages.get("")
async def queue_page(
    request: Request,
    projections: ProjectionsDep,
    kind: str = "",
    channel: str = "",
    assignee: str = "",
    overdue: str = "",
    after: str = "",
) -> Response:
    """Open items across customers, most urgent first, with filters."""
    now = present.moment(projections.hub.clock())
    now_text = norm_time(now) or ""
    start = tuple(after.split("|")) if after.count("|") == 2 else None
    filters = {"kind": kind, "channel": channel, "assignee": assignee, "overdue": overdue}

    def query(tx: Tx) -> dict[str, Any]:
        items = open_items.queue(
            tx,
            now_text,
            kinds=[kind] if kind else [],
            channels=[channel] if channel else [],
            assignee=assignee or None,
            overdue={"yes": True, "no": False}.get(overdue),
            limit=50,
            after=start,  # type: ignore[arg-type]
        )
        names = reads.customer_names(tx, [i.get("merged_into") or i["customer_id"] for i in items])
        return {"items": items, "names": names}

    # The position before the read: an event landing meanwhile is announced, never missed.
    position = await run_in_threadpool(head, projections)
    found = await read(projections, query)
    following = None
    if len(found["items"]) == 50:
        last = found["items"][-1]
        cursor = f"{last['due_at']}|{last['customer_id']}|{last['item_id']}"
        following = "?" + urlencode({**{k: v for k, v in filters.items() if v}, "after": cursor})
    return page(
        request,
        "queue.html",
        **found,
        filters=filters,
        following=following,
        paged=bool(after),
        position=position,
        live=f"/dashboard/live?after={position}",
    )


@agent_pages.get("/queue-counts")
async def queue_counts(request: Request, projections: ProjectionsDep, kind: str = "") -> Response:
    """The count tiles of the queue page: open and overdue items per kind. Counting every open
    item takes time in proportion to the queue, so the page loads them after its table."""
    now_text = norm_time(projections.hub.clock()) or ""
    counts = await read(projections, lambda tx: reads.queue_counts(tx, now_text))
    return page(request, "queue_counts.html", counts=counts, filters={"kind": kind})


@agent_pages.get("/customers")
async def find_customer(request: Request, hub: HubDep, q: str = "") -> Response:
    """Go to a customer by id, email, phone or account."""
    term = q.strip()
    try:
        if not term:
            raise InvalidInput("q", "type an email, a phone number, an account or a customer id")
        uuid.UUID(term)
        return RedirectResponse(f"/dashboard/customers/{term}", status_code=303)
    except ValueError:
        pass
    except InvalidInput as error:
        return page(request, "search.html", 422, q=q, problem=error)
    kind = "email" if "@" in term else "account" if ":" in term else "phone"
    try:
        found = await customer_routes.find_customer(hub, **{kind: term})
    except HubError as error:
        status = 404 if isinstance(error, CustomerNotFound) else error.status
        return page(request, "search.html", status, q=q, problem=error)
    return RedirectResponse(f"/dashboard/customers/{found.customer_id}", status_code=303)


CLAIMS_SHOWN, ORDERS_SHOWN = 20, 12


async def customer_view(
    projections: Projections, customer_id: str, channel: str, cursor: str, every_claim: bool
) -> dict[str, Any]:
    now = norm_time(projections.hub.clock()) or ""

    def query(tx: Tx) -> dict[str, Any]:
        return reads.read_customer_page(
            tx,
            customer_id,
            now,
            channels=[channel] if channel else [],
            cursor=cursor or None,
            claims=None if every_claim else CLAIMS_SHOWN,
        )

    view = await read(projections, query)
    view["claims_cut"] = not every_claim and len(view["claims"]) == CLAIMS_SHOWN
    view["orders"] = list(view["orders"].items())[::-1][:ORDERS_SHOWN]  # newest first
    return view


@agent_pages.get("/customers/{customer_id}")
async def customer_page(
    request: Request,
    customer_id: str,
    projections: ProjectionsDep,
    channel: str = "",
    cursor: str = "",
    claims: str = "",
) -> Response:
    """Customer 360°: profile, open items, claims, timeline, conflicts, dry-run form."""
    try:
        view = await customer_view(projections, customer_id, channel, cursor, claims == "all")
    except HubError as error:
        return page(request, "search.html", error.status, q=customer_id, problem=error)
    return customer_response(request, customer_id, view, channel, cursor)


def customer_response(
    request: Request,
    customer_id: str,
    view: dict[str, Any],
    channel: str,
    cursor: str,
    draft: dict[str, Any] | None = None,
    status: int = 200,
    **context: Any,
) -> Response:
    subjects = sorted(
        {c["subject"] for c in view["claims"]}
        | {f"order:{order}:status" for order, _ in view["orders"]}
        | {f"service:{i['request_id']}:status" for i in view["items"] if i.get("request_id")}
    )
    here = f"/dashboard/customers/{customer_id}"
    query = urlencode({k: v for k, v in (("channel", channel), ("cursor", cursor)) if v})
    return page(
        request,
        "customer.html",
        status,
        customer_id=customer_id,
        **view,
        channel=channel,
        cursor=cursor,
        subjects=subjects,
        draft=draft or {"channel": "phone", "type": "call.outbound"},
        draft_types=DRAFT_TYPES,
        draft_channels=sorted(BUILT_IN_CHANNELS | set(request.app.state.settings.channels)),
        here=here + (f"?{query}" if query else ""),
        live=f"/dashboard/live?after={view['position']}&customer={customer_id}",
        **context,
    )


def draft_envelope(customer_id: str, form: dict[str, str], now: Any) -> dict[str, Any]:
    """The touchpoint an agent is about to record, from the dry-run form's fields."""
    kind = form.get("type", "")
    data = {DRAFT_TYPES.get(kind, "text"): form.get("message") or "(draft)"}
    claims = []
    for n in range(3):
        subject, value = form.get(f"subject{n}", "").strip(), form.get(f"value{n}", "").strip()
        if subject or value:
            claims.append({"subject": subject, "value": claim_value(value)})
    return {
        "source": {"channel": form.get("channel", ""), "id": f"draft-{uuid.uuid4()}"},
        "type": kind,
        "occurred_at": now.isoformat(),
        "customer": {"id": customer_id},
        "actor": {"kind": "agent", "id": form.get("agent") or "agent"},
        "data": data,
        "claims": claims,
        "acknowledged_open_items": [v for k, v in form.items() if k.startswith("ack:")],
    }


def claim_value(text: str) -> Any:
    """A typed value: JSON when it parses (numbers, objects), `19.90 EUR` as money, else text."""
    parts = text.split()
    if len(parts) == 2 and len(parts[1]) == 3 and parts[1].isalpha() and parts[1].isupper():
        return {"amount": parts[0], "currency": parts[1]}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if not isinstance(value, str) else text


@agent_pages.post("/customers/{customer_id}/check")
async def check_draft(
    request: Request, customer_id: str, hub: HubDep, projections: ProjectionsDep
) -> Response:
    """Dry run of a draft answer: the conflicts it would cause; records nothing."""
    body = (await request.body()).decode("utf-8", "replace")
    form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
    raw = draft_envelope(customer_id, form, hub.clock())
    problem, result = None, None
    try:
        if raw["type"] not in DRAFT_TYPES:
            raise InvalidInput("type", f"choose one of {', '.join(DRAFT_TYPES)}")
        result = await run_in_threadpool(hub.check, parse_envelope(raw))
    except HubError as error:
        problem = error
    try:
        view = await customer_view(projections, customer_id, "", "", False)
    except HubError as error:
        return page(request, "search.html", error.status, q=customer_id, problem=error)
    return customer_response(
        request,
        customer_id,
        view,
        "",
        "",
        draft=form,
        status=problem.status if problem else 200,
        problem=problem,
        result=result,
    )


def stopping(request: Request) -> bool:
    """The server is shutting down (`hub serve` got SIGTERM): open streams end now, so they
    do not hold up the graceful shutdown of the requests that are still being answered."""
    return bool(getattr(request.app.state, "stopping", False))


async def pause(request: Request, seconds: float) -> None:
    """Sleep `seconds`, in short steps, ending early when the server is stopping."""
    while seconds > 0 and not stopping(request):
        await asyncio.sleep(min(0.5, seconds))
        seconds -= 0.5


@live_updates.get("/live")
async def live(
    request: Request,
    projections: ProjectionsDep,
    after: int = 0,
    customer: str = "",
    every: Annotated[float, Query(ge=0.5, le=600)] = 0.5,
) -> StreamingResponse:
    """Server-sent events: the projection position, each time the views move past it (for one
    customer: each time that customer's pages change), at most once per `every` seconds."""
    resume = request.headers.get("last-event-id", "")
    last = max(after, int(resume)) if resume.isdigit() else after

    def position() -> int:
        if customer:
            return projections.read(lambda tx: reads.customer_position(tx, customer))
        return head(projections)

    async def stream() -> AsyncIterator[bytes]:
        nonlocal last
        yield b"retry: 2000\n\n"
        quiet = 0.0
        while not stopping(request) and not await request.is_disconnected():
            try:
                now_at = await run_in_threadpool(position)
            except HubError:
                now_at = last  # the customer is not projected yet: nothing to tell
            if now_at > last:
                last = now_at
                quiet = 0.0
                doc = orjson.dumps({"position": now_at}).decode()
                yield f"id: {now_at}\nevent: position\ndata: {doc}\n\n".encode()
                # A page rendering a costly report is told again no sooner than `every`.
                await pause(request, every - 0.5)
            elif quiet >= 15:
                quiet = 0.0
                yield b": keep-alive\n\n"  # keeps proxies from closing an idle stream
            await asyncio.sleep(0.5)
            quiet += 0.5

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


router.include_router(agent_pages)
router.include_router(dashboard_reports.router)
router.include_router(live_updates)
