"""Access by API key and role (SPEC §10): the dependency every route and page declares.

Roles: `channel:<name>` (submit that channel's touchpoints), `agent` (read a customer,
dry-run answers), `dashboard` (read projections), `auditor` (history, export, verify),
`admin` (everything, merges, erasure, keys).

A route declares who may call it with `dependencies=[Requires("agent", "dashboard")]`
(`"channel"` admits any channel key; `admin` is always admitted). Until the hardening
work stores keys, every caller is admitted: this module is the one place that changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id and role (`anonymous`/`open` when the hub runs open)."""

    key_id: str
    role: str

    @property
    def channel(self) -> str | None:
        """The channel of a `channel:<name>` key, else None."""
        kind, _, name = self.role.partition(":")
        return name if kind == "channel" else None


OPEN = Principal("anonymous", "open")


def current_principal(request: Request) -> Principal:
    """The caller of this request (set by `Requires`)."""
    principal: Principal = getattr(request.state, "principal", OPEN)
    return principal


def Requires(*roles: str) -> Any:  # noqa: N802 - used like a class in route declarations
    """A dependency admitting callers with one of `roles` (and admins)."""

    def check(request: Request) -> Principal:
        request.state.principal = OPEN
        return OPEN

    return Depends(check)
