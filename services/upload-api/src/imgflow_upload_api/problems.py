"""RFC 9457 problem details: every error the API returns is one of these.

Each problem has a stable machine-readable ``code`` (also the tail of its ``type`` URI),
so clients branch on the code, never on the human text.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:imgflow:problem:"
# A route's `responses` entry for an error status (openapi.py words its description).
PROBLEM_RESPONSE = {"content": {PROBLEM_MEDIA_TYPE: {}}, "description": "RFC 9457 problem details"}

_HTTP_CODES = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-request", "Invalid request"),
    503: ("service-unavailable", "Service unavailable"),
}


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


def image_not_found(image_id: object) -> Problem:
    """The one 404 of every route about an image: unknown, another tenant's, or not an id."""
    return Problem(404, "image-not-found", "Image not found", f"no image has the id {image_id}")


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    body = {
        "type": TYPE_PREFIX + problem.code,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        "code": problem.code,
        **problem.extensions,
    }
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE
    )


_HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def documented_methods(request: Request) -> str | None:
    """``Allow`` for the request's path as the contract documents it, or None for a path
    it does not document. (Starlette names only the methods of the first route whose path
    matched, and GET and POST /v1/images are routes of two domains.)"""
    table = getattr(request.app.state, "documented_methods", None)
    if table is None:
        table = [
            (
                # Paths are letters, digits, "/", "-", "_" and {parameters}.
                re.compile("^" + re.sub(r"\{[^/]+?\}", "[^/]+", path) + "$"),
                ", ".join(sorted(m.upper() for m in operations if m in _HTTP_METHODS)),
            )
            for path, operations in request.app.openapi()["paths"].items()
        ]
        request.app.state.documented_methods = table
    for pattern, methods in table:
        if pattern.match(request.url.path):
            return methods
    return None


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(request, exc)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code, title = _HTTP_CODES.get(exc.status_code, ("http-error", "HTTP error"))
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (documented := documented_methods(request)) is not None:
            headers["Allow"] = documented
        return problem_response(
            request, Problem(exc.status_code, code, title, str(exc.detail), headers=headers)
        )

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()
        ]
        return problem_response(
            request,
            Problem(
                422,
                "invalid-request",
                "Invalid request",
                "the request does not match the API contract",
                errors=errors,
            ),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request,
            Problem(
                500,
                "internal-error",
                "Internal error",
                "an unexpected error occurred; it has been logged",
            ),
        )

    async def on_database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("PostgreSQL unreachable on %s %s: %r", request.method, request.url.path, exc)
        return problem_response(
            request,
            Problem(
                503,
                "database-unavailable",
                "Database unavailable",
                "the database cannot be reached; retry later",
                headers={"Retry-After": "5"},
            ),
        )

    app.add_exception_handler(Problem, on_problem)
    for connection_error in (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.OperatorInterventionError,  # shutdown, cannot connect now
        ConnectionError,
    ):
        app.add_exception_handler(connection_error, on_database_down)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
