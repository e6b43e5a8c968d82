"""The FastAPI application factory: builds the hub in the lifespan hook, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from api import auth, problems
from api.fast import PATH as PLAIN_PATH
from api.fast import SingleTouchpoint
from api.limits import BodyLimit, RequestTimeout
from api.metrics import Metrics
from api.routes import (
    adapters,
    audit,
    customers,
    dashboard,
    feed,
    health,
    reports,
    session,
    touchpoints,
    views,
)
from hub.app import Hub
from hub.group_commit import GroupCommit
from hub.settings import Settings
from projections.runner import build_projections


class HubAPI(FastAPI):
    """FastAPI with the plain `POST /v1/touchpoints` answered before FastAPI and its middleware
    stack see it (`api/fast.py`); every other request goes through them as usual."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_path = SingleTouchpoint(partial(FastAPI.__call__, self))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PLAIN_PATH:
            scope["app"] = self
            await self.fast_path(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def build_hub(settings: Settings) -> Hub:
    return Hub(
        settings.eventsourcing_env(),
        channels=settings.channels,
        default_region=settings.default_region,
        limits=settings.limits(),
        key_cache_s=settings.key_cache_s,
    )


def create_app(settings: Settings | None = None, hub: Hub | None = None) -> FastAPI:
    """The HTTP API; builds its own Hub from settings unless one is given (tests)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = hub is None
        app.state.hub = hub or build_hub(settings)
        app.state.committer = (
            GroupCommit(app.state.hub, max_wait=settings.group_commit_wait_ms / 1000)
            if settings.group_commit
            else None
        )
        app.state.projections = build_projections(app.state.hub, settings)
        app.state.metrics.watch_projections(app.state.projections.status)
        caches = {"aggregates": app.state.hub.cache}
        caches.update(
            (f"view_{view.name}", view.cache)
            for view in app.state.projections.views
            if getattr(view, "cache", None) is not None
        )
        app.state.metrics.watch_caches(caches)
        if settings.run_projections:
            app.state.projections.start()  # embedded default: projections run in this process
        try:
            yield
        finally:
            app.state.projections.stop()
            if app.state.committer is not None:
                app.state.committer.close()  # commits what was queued before the store closes
            if owned:
                app.state.hub.close()

    app = HubAPI(
        title="Customer interaction hub",
        version="0.1.0",
        description="One ordered, immutable history per customer, checked before it is told.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.stopping = False  # set by `hub serve` on SIGTERM: event streams end
    app.state.metrics = Metrics()
    problems.install(app)
    auth.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Outermost: the time limit covers reading the body too.
    app.add_middleware(
        RequestTimeout,
        seconds=settings.request_timeout_s,
        on_timeout=app.state.metrics.timeouts.inc,
    )
    for module in (touchpoints, adapters, customers, views, reports, audit, health, session):
        app.include_router(module.router)
    app.include_router(feed.router)
    app.include_router(dashboard.router)
    return app
