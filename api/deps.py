"""Dependencies of the routes: the application service and the settings, from app state.

Coroutines on purpose, like every dependency that does no I/O: FastAPI runs a plain `def`
dependency in the thread pool, a hop that cost more than the rest of the dependencies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from hub.app import Hub
from hub.errors import InvalidInput
from hub.group_commit import GroupCommit
from hub.settings import Settings
from projections.runner import Projections


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def get_committer(request: Request) -> GroupCommit | None:
    committer: GroupCommit | None = request.app.state.committer
    return committer


async def get_projections(request: Request) -> Projections:
    projections: Projections = request.app.state.projections
    return projections


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


HubDep = Annotated[Hub, Depends(get_hub)]
CommitterDep = Annotated[GroupCommit | None, Depends(get_committer)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ProjectionsDep = Annotated[Projections, Depends(get_projections)]
MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**63 - 1,  # positions are bigint; a larger one cannot even be answered in JSON
        description="wait (bounded) until the projections have applied this position",
    ),
]


def aware(name: str, moment: datetime | None) -> datetime | None:
    """A time parameter as given, refused (422 naming it) without a time zone."""
    if moment is not None and moment.tzinfo is None:
        raise InvalidInput(name, "give a time zone (e.g. Z)")
    return moment
