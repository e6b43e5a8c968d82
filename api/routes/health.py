"""Liveness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import HubDep, SettingsDep

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
