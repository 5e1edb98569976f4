"""Deterministic object keys: a rerun of any task overwrites, never duplicates."""

from __future__ import annotations

from uuid import UUID


def original_key(image_id: UUID) -> str:
    return f"originals/{image_id}"


def rendition_key(image_id: UUID, size: int, extension: str) -> str:
    return f"renditions/{image_id}/{size}.{extension}"


def rendition_prefix(image_id: UUID) -> str:
    return f"renditions/{image_id}/"
