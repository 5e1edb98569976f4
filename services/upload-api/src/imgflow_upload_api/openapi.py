"""The OpenAPI document as clients should read it, refined from what FastAPI generates.

FastAPI knows the routes and models; it does not know that every error is an RFC 9457
problem (its default 422 schema is not what ``problems.py`` sends), how the admin routes
authenticate, or the Idempotency-Key syntax. ``refine`` adds those, for every route, so a
new router gets them without repeating them. The checked-in copy is
services/upload-api/openapi.json (``tools/openapi.py --write``; a test compares them).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from imgflow_upload_api.problems import PROBLEM_MEDIA_TYPE, TYPE_PREFIX
from imgflow_upload_api.settings import ApiSettings
from imgflow_upload_api.uploads.idempotency import HEADER as IDEMPOTENCY_HEADER

API_KEY = "apiKey"
ADMIN_TOKEN = "adminToken"
ADMIN_PREFIX = "/v1/admin"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# What FastAPI calls the scheme of `HTTPBearer()` (auth.py): renamed to API_KEY.
_FASTAPI_BEARER = "HTTPBearer"
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
# Fixed here rather than http.HTTPStatus, whose phrases change between Python versions.
_PHRASES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
    503: "Service unavailable",
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. Branch on `code` (stable), never on the text; "
    "some problems add members (e.g. `max_bytes`, `errors`, `checks`).",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance", "code"],
    "properties": {
        "type": {
            "type": "string",
            "description": f"`{TYPE_PREFIX}` followed by the code.",
            "examples": [f"{TYPE_PREFIX}unsupported-format"],
        },
        "title": {"type": "string", "description": "Short summary of the problem type."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong with this request."},
        "instance": {"type": "string", "description": "The request path."},
        "code": {
            "type": "string",
            "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$",
            "examples": ["unsupported-format"],
        },
    },
    "additionalProperties": True,
}

# The body of POST /v1/images (the route reads the stream itself, so FastAPI cannot see it).
# An empty body is refused (400 empty-body).
_IMAGE_BYTES = {"type": "string", "format": "binary", "minLength": 1}
UPLOAD_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "description": "The image bytes, raw or as the multipart field `file`. The format is "
    "sniffed from the bytes (JPEG, PNG, GIF, WebP, TIFF, HEIF, AVIF); Content-Type and file "
    "names are ignored.",
    "content": {
        "application/octet-stream": {"schema": _IMAGE_BYTES},
        "image/*": {"schema": _IMAGE_BYTES},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": _IMAGE_BYTES},
            }
        },
    },
}
LOCATION_HEADER = {
    "Location": {"description": "The new image: `/v1/images/{id}`.", "schema": {"type": "string"}}
}

_IDEMPOTENCY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": "^[\\x21-\\x7e]+$",
    "description": "1-255 visible ASCII characters (a UUID, say).",
}
_REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "`true` when this answers an Idempotency-Key seen before: the first "
        "request's image and status, nothing recorded again. Absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "The scheme to use.", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
}


def operation_id(route: APIRoute) -> str:
    """`upload_image` -> `uploadImage`: what client generators turn into method names."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def install_contract(app: FastAPI, settings: ApiSettings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = refine(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
            app.openapi_schema = declare_limits(spec, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def declare_limits(spec: dict[str, Any], settings: ApiSettings) -> dict[str, Any]:
    """The deployment's limits on request fields, so a client (or a generator) knows them
    before it is refused: the served document says this deployment's values; the checked-in
    one the defaults."""
    schemas = spec["components"]["schemas"]
    byte_size = schemas["UploadRequest"]["properties"]["byte_size"]
    byte_size["maximum"] = settings.upload_presigned_max_bytes
    byte_size["description"] += " At most IMGFLOW_UPLOAD_PRESIGNED_MAX_BYTES."
    return spec


def refine(spec: dict[str, Any]) -> dict[str, Any]:
    components = spec.setdefault("components", {})
    schemes = components.setdefault("securitySchemes", {})
    bearer = schemes.pop(_FASTAPI_BEARER, {})
    schemes[API_KEY] = {
        "type": "http",
        "scheme": "bearer",
        "description": bearer.get("description") or "An imgflow API key of your tenant.",
    }
    schemes[ADMIN_TOKEN] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The operator token (IMGFLOW_ADMIN_TOKEN); the admin API is off without it.",
    }
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                _refine_operation(path, item[method])
    if "HTTPValidationError" not in _refs(spec.get("paths", {})):
        for name in _FASTAPI_VALIDATION:
            components["schemas"].pop(name, None)
    return spec


def _refine_operation(path: str, operation: dict[str, Any]) -> None:
    security = operation.get("security")
    if path.startswith(ADMIN_PREFIX):
        operation["security"] = [{ADMIN_TOKEN: []}]
    elif security:
        operation["security"] = [
            {API_KEY if name == _FASTAPI_BEARER else name: scopes for name, scopes in s.items()}
            for s in security
        ]
    responses = operation.setdefault("responses", {})
    if "security" in operation:
        responses.setdefault("401", {})
    if "requestBody" in operation:
        # A body that is not JSON at all never reaches validation: 400 bad-request.
        responses.setdefault("400", {})
    if path.startswith("/v1/"):
        # Any route that reads PostgreSQL answers 503 database-unavailable when it is down.
        responses.setdefault("503", {})
    for status, response in responses.items():
        content = response.get("content", {})
        # FastAPI's own 422 (application/json, HTTPValidationError) is not what is sent.
        is_validation = status == "422" and "application/json" in content
        if not (PROBLEM_MEDIA_TYPE in content or is_validation or not response):
            continue
        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
        description = response.get("description", "")
        if not description or description.startswith("RFC 9457") or is_validation:
            phrase = _PHRASES.get(int(status), "Refused")
            response["description"] = f"{phrase}: RFC 9457 problem details"
        if headers := _HEADERS.get(int(status)):
            response.setdefault("headers", {}).update(headers)
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "header" and parameter.get("name") == IDEMPOTENCY_HEADER:
            parameter["schema"] = {**_IDEMPOTENCY_SCHEMA, **_title(parameter.get("schema"))}
            for status in ("200", "201"):
                if status in responses:
                    responses[status].setdefault("headers", {}).update(_REPLAYED_HEADER)


def _title(schema: dict[str, Any] | None) -> dict[str, Any]:
    return {"title": schema["title"]} if schema and "title" in schema else {}


def _refs(node: Any) -> set[str]:
    """Names of the component schemas that ``node`` refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found
