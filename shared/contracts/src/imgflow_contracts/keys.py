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


# The analysis copy's long side: the deduper's 96 px views and the hasher's 32 px pHash
# are cut from it with room to spare (the deduper decodes at least twice its input size).
ANALYSIS_LONG_SIDE = 512


def analysis_key(image_id: UUID) -> str:
    """The thumbnailer's upright, sRGB, whole-frame copy of the original at a small size,
    which the hasher and the deduper decode instead of the original. Under the renditions'
    prefix, so deleting an image deletes it; it is not a rendition clients are offered."""
    return f"{rendition_prefix(image_id)}analysis.jpg"


def features_key(image_id: UUID) -> str:
    """The deduper's geometric-check features of the analysis copy (tens of KB, its
    format version inside: imgflow_deduper.stored_features), made once and read by every
    later check that meets the image. Under the renditions' prefix, so deleting an image
    deletes them; the thumbnailer deletes them when it writes a new analysis copy."""
    return f"{rendition_prefix(image_id)}features.bin"
