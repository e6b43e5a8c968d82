"""The browser's way in: a `/login` form that keeps the API key in the `hub_key` cookie
(HttpOnly, SameSite=Strict) for the dashboard's pages, and `/logout`."""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import COOKIE, AccessDenied, authenticate

router = APIRouter(tags=["session"], include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · Customer interaction hub</title>
<style>body{{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}}
input{{width:100%;padding:.5rem;margin:.3rem 0 1rem;box-sizing:border-box}}
button{{padding:.5rem 1.2rem}}.error{{color:#b00020}}</style></head>
<body><h1>Customer interaction hub</h1>
{message}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
<p>Keys are made by an administrator: <code>hub keys create --role dashboard</code>.</p>
</body></html>"""


def _safe_next(target: str | None) -> str:
    # Only a path on this server: never an open redirect to another site.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _page(next_path: str, message: str = "", status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        PAGE.format(next=escape(next_path), message=message),
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/login")
async def login_form(next: str | None = None) -> Response:
    """The sign-in form."""
    return _page(_safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key and keep it in the `hub_key` cookie; back to where the browser was."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    next_path = _safe_next((form.get("next") or ["/"])[0])
    try:
        if not key:
            raise AccessDenied(401, "missing-key", "give an API key")
        await authenticate(request, key)
    except AccessDenied as denied:
        request.app.state.metrics.denied(denied.reason)
        message = f'<p class="error">{escape(str(denied))}</p>'
        return _page(next_path, message, 401)
    answer = RedirectResponse(next_path, status_code=303)
    answer.set_cookie(
        COOKIE,
        key,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return answer


@router.api_route("/logout", methods=["GET", "POST"])
async def logout() -> Response:
    """Forget the key kept in the cookie."""
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return answer
