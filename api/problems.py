"""Errors as RFC 9457 problem documents: one place turns every failure into one."""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import OperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from hub.errors import HubError, StoreUnavailable

PROBLEM = "application/problem+json"


def problem_type(kind: str) -> str:
    return kind if kind == "about:blank" else f"/problems/{kind}"


def problem_document(error: HubError) -> dict[str, Any]:
    doc = error.problem()
    doc["type"] = problem_type(doc["type"])
    return doc


def json_response(
    doc: Any,
    status: int = 200,
    media_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON response encoded with orjson."""
    return Response(orjson.dumps(doc), status_code=status, media_type=media_type, headers=headers)


def problem_response(doc: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return json_response(doc, doc["status"], PROBLEM, headers)


def hub_error_response(error: HubError) -> Response:
    """A domain error's problem document (503s say when to try again)."""
    headers = {"Retry-After": "1"} if error.status == 503 else None
    return problem_response(problem_document(error), headers)


def field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] if len(parts) > 1 else parts
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    """Register the handlers that map every error to a problem document."""

    @app.exception_handler(HubError)
    async def hub_error(_: Request, error: HubError) -> Response:
        return hub_error_response(error)

    @app.exception_handler(OperationalError)
    async def store_down(_: Request, error: OperationalError) -> Response:
        # Reads and health checks meet the store outside Hub.record_batch's own mapping.
        return problem_response(
            problem_document(StoreUnavailable(str(error))), {"Retry-After": "1"}
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> Response:
        errors = [
            {
                "field": "body" if e["type"] == "json_invalid" else field_of(e["loc"]),
                "message": e["msg"],
            }
            for e in error.errors()
        ]
        return problem_response(
            {
                "type": problem_type("invalid-input"),
                "title": "Invalid input",
                "status": 422,
                "detail": "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                "errors": errors,
            }
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> Response:
        return problem_response(
            {
                "type": "about:blank",
                "title": str(error.detail),
                "status": error.status_code,
                "detail": str(error.detail),
            },
            dict(error.headers) if error.headers else None,
        )
