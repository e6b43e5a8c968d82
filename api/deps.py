"""Dependencies of the routes: the application service and the settings, from app state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hub.app import Hub
from hub.settings import Settings


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


HubDep = Annotated[Hub, Depends(get_hub)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
