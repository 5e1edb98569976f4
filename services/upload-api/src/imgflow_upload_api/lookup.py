"""Shared by the per-image routes: the request's resources and the 404 of an unknown id."""

from __future__ import annotations

from uuid import UUID

from fastapi import Request

from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.problems import PROBLEM_MEDIA_TYPE, Problem

PROBLEM_RESPONSE = {"content": {PROBLEM_MEDIA_TYPE: {}}, "description": "RFC 9457 problem"}


def resources(request: Request) -> Resources:
    return request.app.state.resources  # type: ignore[no-any-return]


def image_not_found(image_id: object) -> Problem:
    return Problem(404, "image-not-found", "Image not found", f"no image has the id {image_id}")


def parse_image_id(raw: str) -> UUID:
    """An id that is not a UUID names no image: 404, like any unknown id."""
    try:
        return UUID(raw)
    except ValueError as exc:
        raise image_not_found(repr(raw)) from exc
