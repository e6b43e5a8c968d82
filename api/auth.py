"""Access by API key and role (SPEC §10): the dependency every route and page declares.

Roles: `channel:<name>` (submit that channel's touchpoints), `agent` (read a customer,
dry-run answers), `dashboard` (read projections), `auditor` (history, export, verify),
`admin` (everything, merges, erasure, keys).

A route declares who may call it with `dependencies=[Requires("agent", "dashboard")]`
(`"channel"` admits any channel key, `"channel:web"` only that one; `admin` is always
admitted). The key comes as `Authorization: Bearer <key>`, `X-API-Key: <key>` or the
`hub_key` cookie the `/login` page sets. While no key was ever created in the store the hub
runs open and admits every caller (`hub serve` allows that on loopback only). A missing,
unknown or revoked key is a 401 problem, a key of the wrong role or channel a 403, and
each denial is counted in the metrics by its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.problems import problem_response, problem_type
from hub.errors import HubError
from hub.keys import Keys

COOKIE = "hub_key"
# The channel each webhook adapter records for: its key is the only channel key admitted.
ADAPTER_CHANNELS = {"shop": "web", "email": "email", "telephony": "phone", "servicedesk": "service"}


BEARER = HTTPBearer(auto_error=False, description="an API key: `hub keys create --role ...`")
HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
BROWSER = APIKeyCookie(name=COOKIE, auto_error=False, description="set by the /login form")


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

    def admitted(self, roles: Iterable[str]) -> bool:
        """Whether one of `roles` admits this caller (admins and an open hub: always)."""
        wanted = set(roles)
        if self.role in ("admin", "open") or self.role in wanted:
            return True
        return self.channel is not None and "channel" in wanted


OPEN = Principal("anonymous", "open")


class AccessDenied(HubError):
    """A request refused for its key (401) or for its key's role or channel (403)."""

    def __init__(self, status: int, reason: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.kind = reason
        self.title = "Authentication required" if status == 401 else "Forbidden"


def presented_key(request: Request) -> str | None:
    """The key the request carries: bearer token, X-API-Key header or `hub_key` cookie."""
    return key_of(
        request.headers.get("authorization", ""),
        request.headers.get("x-api-key"),
        lambda: request.cookies.get(COOKIE),
    )


def key_of(authorization: str, api_key: str | None, cookie: Callable[[], str | None]) -> str | None:
    """`presented_key` from the headers' values (the cookie read only when needed)."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return api_key or cookie() or None


def identify(keys: Keys, key: str | None) -> Principal:
    """The caller holding `key` (may read the store: call it off the event loop)."""
    if key is None:
        if keys.open:
            return OPEN
        raise AccessDenied(401, "missing-key", "give an API key (Authorization: Bearer <key>)")
    found = keys.verify(key)
    if found is None:
        raise AccessDenied(401, "unknown-key", "this API key is not known to the hub")
    if found.revoked:
        raise AccessDenied(401, "revoked-key", f"API key {found.id} was revoked")
    return Principal(found.id, found.role)


async def authenticate(request: Request, key: str | None) -> Principal:
    """The caller holding `key`; the store is read only when the cache cannot answer."""
    keys: Keys = request.app.state.hub.keys
    if keys.remembers(key):
        return identify(keys, key)
    return await run_in_threadpool(identify, keys, key)


async def current_principal(request: Request) -> Principal:
    """The caller of this request (set by `Requires`)."""
    principal: Principal = getattr(request.state, "principal", OPEN)
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def Requires(*roles: str) -> Any:  # noqa: N802 - used like a class in route declarations
    """A dependency admitting callers with one of `roles` (and admins)."""

    async def check(
        request: Request,
        _bearer: Annotated[Any, Depends(BEARER)],
        _header: Annotated[Any, Depends(HEADER)],
        _cookie: Annotated[Any, Depends(BROWSER)],
    ) -> Principal:
        # The three schemes only describe the key in the OpenAPI document (/docs "Authorize").
        principal = await authenticate(request, presented_key(request))
        if not principal.admitted(roles):
            kind = "channel" if principal.channel and any(":" in r for r in roles) else "role"
            raise AccessDenied(
                403,
                f"wrong-{kind}",
                f"a {principal.role} key may not do this; it needs {' or '.join(roles)}",
            )
        request.state.principal = principal
        return principal

    return Depends(check)


def require_channel(principal: Principal, channels: Iterable[str | None]) -> None:
    """Refuse (403) a channel key submitting for any channel but its own."""
    if principal.channel is None:
        return
    foreign = sorted({c or "?" for c in channels if c != principal.channel})
    if foreign:
        raise AccessDenied(
            403,
            "wrong-channel",
            f"a {principal.role} key may submit only source.channel {principal.channel!r}, "
            f"not {', '.join(map(repr, foreign))}; nothing was recorded",
        )


def _is_page_view(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.method == "GET" and "text/html" in accept and request.url.path != "/login"


def install(app: FastAPI) -> None:
    """Answer denials as problem documents and count them."""

    @app.exception_handler(AccessDenied)
    async def denied(request: Request, error: AccessDenied) -> Response:
        request.app.state.metrics.denied(error.reason)
        if error.status == 401 and _is_page_view(request):
            # A browser opening a page without a (valid) key goes to the sign-in form.
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
        headers = {"WWW-Authenticate": 'Bearer realm="hub"'} if error.status == 401 else None
        return problem_response(
            {
                "type": problem_type(error.reason),
                "title": error.title,
                "status": error.status,
                "detail": str(error),
            },
            headers,
        )
