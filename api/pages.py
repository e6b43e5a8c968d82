"""What every dashboard page shares: the templates with their filters, rendering a page with
the clock of the hub, and reading the views off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from api import charts, present
from projections.runner import Projections
from projections.store import Tx

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(
    when=present.when,
    day=present.day,
    value=present.show_value,
    actor=present.actor_name,
    headline=present.headline,
    item_title=present.item_title,
    duration=charts.duration,
)
templates.env.globals.update(
    channels=present.CHANNEL_LABELS,
    kinds=present.KIND_LABELS,
    rules=present.RULE_LABELS,
    colour=charts.colour,
)


async def read(projections: Projections, query: Callable[[Tx], T]) -> T:
    """Run a query on the views in a worker thread (the store is synchronous)."""
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
    """The position every view has reached (what a page shows)."""
    return projections.position(projections.names)
