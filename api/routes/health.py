"""Liveness (open to all) and the Prometheus metrics (dashboard and admin keys)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth import Requires
from api.deps import HubDep, SettingsDep
from api.metrics import CONTENT_TYPE, Metrics

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(hub: HubDep, settings: SettingsDep) -> dict[str, Any]:
    """The hub is up and its store answers; the position of the last recorded event."""
    position = await run_in_threadpool(hub.recorder.max_notification_id)
    return {
        "status": "ok",
        "store": "postgresql" if settings.is_postgres else "sqlite",
        "position": position or 0,
    }


@router.get("/metrics", dependencies=[Requires("dashboard")], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process: touchpoints, append latency, projection lag, denials."""
    registry: Metrics = request.app.state.metrics
    return Response(await run_in_threadpool(registry.exposition), media_type=CONTENT_TYPE)
