"""Deterministic object keys: a rerun of any task overwrites, never duplicates."""

from __future__ import annotations

from uuid import UUID


def original_key(tenant_id: UUID, sha256: str) -> str:
    """Content-addressed: identical bytes from one tenant are one object (and one image).

    Originals stored before tenants existed keep their ``originals/{image_id}`` keys; the
    image row records whichever key its bytes are under.
    """
    return f"originals/{tenant_id}/{sha256}"


def rendition_key(image_id: UUID, size: int, extension: str) -> str:
    return f"renditions/{image_id}/{size}.{extension}"


def rendition_prefix(image_id: UUID) -> str:
    return f"renditions/{image_id}/"
