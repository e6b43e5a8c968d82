"""The Atom feed of one customer (RFC 4287): the updates the customer may see for
themselves, such as order status, service request progress and confirmations, for the
self-service portal and the push channel."""

from __future__ import annotations

from typing import Annotated, Any
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api import present
from api.auth import Requires
from api.deps import MinPosition, ProjectionsDep, SettingsDep
from api.routes.views import POSITION_HEADER
from projections import reads
from projections.store import Tx

ATOM = "http://www.w3.org/2005/Atom"
# Touchpoint types that tell the customer something about their own business with us;
# conversations, notes and internal facts stay out of a feed the customer reads.
CUSTOMER_VISIBLE = (
    "order.placed",
    "order.status_changed",
    "service.opened",
    "service.updated",
    "service.visit_scheduled",
    "service.resolved",
    "registration.confirmed",
    "promise.made",
    "promise.kept",
)
FEED_VIEWS = ("profile", "timeline")

router = APIRouter(
    prefix="/v1/customers",
    tags=["feeds"],
    dependencies=[Requires("agent", "dashboard", "channel")],
)


def atom_time(value: str) -> str:
    found = present.moment(value)
    assert found is not None
    return found.isoformat().replace("+00:00", "Z")


def atom_feed(base: str, customer_id: str, entries: list[dict[str, Any]], name: str) -> bytes:
    """The Atom document of the customer's updates, newest first."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")

    def add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    add(feed, "id", f"urn:uuid:{customer_id}")
    add(feed, "title", f"Updates for {name}" if name else "Your updates")
    add(feed, "subtitle", "Orders, service requests and confirmations")
    newest = max((e["recorded_at"] for e in entries), default=None)
    add(feed, "updated", atom_time(newest) if newest else "1970-01-01T00:00:00Z")
    add(feed, "link", rel="self", type="application/atom+xml", href=f"{base}/feed.atom")
    author = add(feed, "author")
    add(author, "name", "Customer interaction hub")
    add(feed, "generator", "interaction-hub")
    for entry in entries:
        title, text = present.customer_update(entry)
        item = add(feed, "entry")
        add(item, "id", f"urn:uuid:{entry['touchpoint_id']}")
        add(item, "title", title)
        add(item, "published", atom_time(entry["occurred_at"]))
        add(item, "updated", atom_time(entry["recorded_at"]))
        add(item, "category", term=entry["type"], label=entry["type"])
        add(item, "content", text, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


@router.get(
    "/{customer_id}/feed.atom",
    response_class=Response,
    responses={200: {"content": {"application/atom+xml": {}}}, 404: {"description": "Unknown"}},
)
async def customer_feed(
    request: Request,
    customer_id: str,
    projections: ProjectionsDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    min_position: MinPosition = None,
) -> Response:
    """Atom feed of the customer's order, service and confirmation updates, newest first."""

    def query(tx: Tx) -> dict[str, Any]:
        profile = reads.read_profile(tx, customer_id)
        found = reads.read_timeline(tx, customer_id, types=CUSTOMER_VISIBLE, limit=limit)
        name = (profile["contact"].get("name") or {}).get("value")
        return {"entries": found["entries"], "name": name if isinstance(name, str) else ""}

    position = await run_in_threadpool(
        projections.wait_for, FEED_VIEWS, min_position, settings.read_wait_s
    )
    found = await run_in_threadpool(projections.read, query)
    base = str(request.base_url).rstrip("/") + f"/v1/customers/{customer_id}"
    body = atom_feed(base, customer_id, found["entries"], found["name"])
    return Response(
        body,
        media_type="application/atom+xml; charset=utf-8",
        headers={POSITION_HEADER: str(position)},
    )
