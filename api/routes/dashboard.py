"""The dashboard: server-rendered pages for queues, the customer 360° view, conflicts and
analytics, and the server-sent events that keep open pages current.

Pages read the views through the same query functions as the JSON read API, and the
dry-run form asks the application service's `check`, as `POST /v1/touchpoints/check` does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs, urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from api import charts, present
from api.auth import Requires
from api.deps import HubDep, ProjectionsDep
from api.routes import customers as customer_routes
from hub.envelope import BUILT_IN_CHANNELS, parse_envelope
from hub.errors import CustomerNotFound, HubError, InvalidInput
from projections import analytics, conflicts, open_items, reads
from projections.base import norm_time
from projections.runner import Projections
from projections.store import Tx

T = TypeVar("T")
HERE = Path(__file__).resolve().parent.parent
STATIC = {"dashboard.css": "text/css", "live.js": "text/javascript"}
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(
    when=present.when,
    day=present.day,
    value=present.show_value,
    actor=present.actor_name,
    headline=present.headline,
    duration=charts.duration,
)
templates.env.globals.update(
    channels=present.CHANNEL_LABELS,
    kinds=present.KIND_LABELS,
    rules=present.RULE_LABELS,
    colour=charts.colour,
)
KINDS = tuple(present.KIND_LABELS)
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
report_pages = APIRouter(prefix="/dashboard", dependencies=[Requires("dashboard", "auditor")])


async def read(projections: Projections, query: Callable[[Tx], T]) -> T:
    return await run_in_threadpool(projections.read, query)


def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    projections: Projections = request.app.state.projections
    now = projections.hub.clock()
    context.setdefault("live", "")
    return templates.TemplateResponse(
        request,
        name,
        {
            "now": now,
            "ago": lambda value: present.relative(value, now),
            "due": lambda item: present.due(item, now),
            **context,
        },
        status_code=status,
    )


def head(projections: Projections) -> int:
    return projections.position(projections.names)


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
        return {"items": items, "names": names, "counts": reads.queue_counts(tx, now_text)}

    found = await read(projections, query)
    following = None
    if len(found["items"]) == 50:
        last = found["items"][-1]
        cursor = f"{last['due_at']}|{last['customer_id']}|{last['item_id']}"
        following = "?" + urlencode({**{k: v for k, v in filters.items() if v}, "after": cursor})
    position = await run_in_threadpool(head, projections)
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

    found = await read(projections, query)
    summary = found["summary"]
    peak = max([sum(c.values()) for g in summary.values() for c in g.values()], default=1)
    following = None
    if found["next_before"] is not None:
        params = {k: v for k, v in (("rule", rule), ("outcome", outcome)) if v}
        following = "?" + urlencode({**params, "before": found["next_before"]})
    position = await run_in_threadpool(head, projections)
    return page(
        request,
        "conflicts.html",
        **found,
        rule=rule,
        outcome=outcome,
        peak=peak,
        following=following,
        position=position,
        live=f"/dashboard/live?after={position}",
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
    position = await run_in_threadpool(head, projections)
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
        live=f"/dashboard/live?after={position}",
    )


@agent_pages.get("/live")
async def live(
    request: Request, projections: ProjectionsDep, after: int = 0, customer: str = ""
) -> StreamingResponse:
    """Server-sent events: the projection position, each time the views move past it (for one
    customer: each time that customer's pages change)."""
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
        while not await request.is_disconnected():
            try:
                now_at = await run_in_threadpool(position)
            except HubError:
                now_at = last  # the customer is not projected yet: nothing to tell
            if now_at > last:
                last = now_at
                quiet = 0.0
                doc = orjson.dumps({"position": now_at}).decode()
                yield f"id: {now_at}\nevent: position\ndata: {doc}\n\n".encode()
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
router.include_router(report_pages)
