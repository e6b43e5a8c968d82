"""Dependencies of the routes: the application service and the settings, from app state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hub.app import Hub
from hub.group_commit import GroupCommit
from hub.settings import Settings


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def get_committer(request: Request) -> GroupCommit:
    committer: GroupCommit = request.app.state.committer
    return committer


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


HubDep = Annotated[Hub, Depends(get_hub)]
CommitterDep = Annotated[GroupCommit, Depends(get_committer)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
