"""JSON views of images: what GET /v1/images/{id} and the listing answer, and the
status words every view of an image shares."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from imgflow_contracts.queues import Stage
from imgflow_upload_api.duplicates.schemas import DuplicateView

StageStatus = Literal["pending", "running", "done", "failed"]
ImageStatus = Literal["processing", "ready", "failed"]


# RFC 3339 date-time, as `format: date-time` says; pydantic alone would also read a
# number as Unix time, which the contract does not offer.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _rfc3339_text(value: object) -> object:
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    raise ValueError("expected an RFC 3339 date-time with its offset, e.g. 2026-12-02T07:00:00Z")


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]


class StageView(BaseModel):
    status: StageStatus
    attempts: int
    error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RenditionView(BaseModel):
    url: str  # GET it for the bytes
    size: int
    width: int
    height: int
    format: str
    byte_size: int
    object_key: str


class GpsView(BaseModel):
    latitude: float
    longitude: float
    altitude_m: float | None


class ExifView(BaseModel):
    """What the hasher read from EXIF; GPS only where the deployment keeps it."""

    # The camera's wall-clock time; no time zone unless captured_offset says it.
    captured_at: datetime | None
    captured_offset: str | None
    camera_make: str | None
    camera_model: str | None
    orientation: int | None
    gps: GpsView | None


class ImageView(BaseModel):
    id: UUID
    status: ImageStatus
    # Set while the image is in the trash (a resolved duplicate): POST .../restore
    trashed_at: datetime | None = None
    original_url: str  # GET it for the uploaded bytes
    content_type: str
    byte_size: int
    sha256: str
    # Bytes after the end of the image data, kept in the original: a motion photo's
    # video, an editor's padding. 0 when the file ends with its image (and for TIFF,
    # which has no end to measure from).
    trailing_bytes: int = 0
    format: str | None
    width: int | None
    height: int | None
    created_at: datetime
    stages: dict[Stage, StageView]
    renditions: list[RenditionView]
    exact_duplicate_of: UUID | None
    duplicates_checked_at: datetime | None
    # Facts the hasher read from the stored bytes (null until it has run). width and
    # height above are as displayed, after the EXIF orientation.
    mode: str | None = None
    frames: int | None = None
    # 64-bit perceptual hashes as 16 hex digits (imagehash's form): JSON numbers past 2**53
    # lose bits in JavaScript.
    phash: str | None = None
    dhash: str | None = None
    exif: ExifView | None = None
    # near and exact duplicates the deduper found (GET .../duplicates adds the group)
    duplicates: list[DuplicateView]
    # The similar stack holding the image (GET /v1/similar-stacks/{id}): other pictures of
    # the same scene or moment. Null when it is in none.
    similar_stack: UUID | None = None


def overall_status(stage_statuses: list[str]) -> ImageStatus:
    if "failed" in stage_statuses:
        return "failed"
    if stage_statuses and all(s == "done" for s in stage_statuses):
        return "ready"
    return "processing"


def image_view(record: dict[str, Any]) -> ImageView:
    image = record["image"]
    stages = {
        Stage(s["stage"]): StageView(**{k: v for k, v in s.items() if k != "stage"})
        for s in record["stages"]
    }
    return ImageView(
        id=image["id"],
        status=overall_status([s.status for s in stages.values()]),
        trashed_at=image.get("trashed_at"),
        original_url=f"/v1/images/{image['id']}/original",
        content_type=image["content_type"],
        byte_size=image["byte_size"],
        sha256=image["sha256"],
        trailing_bytes=image.get("trailing_bytes") or 0,
        format=image["format"],
        width=image["width"],
        height=image["height"],
        created_at=image["created_at"],
        stages=stages,
        renditions=[
            RenditionView(**r, url=f"/v1/images/{image['id']}/thumbnails/{r['size']}")
            for r in record["renditions"]
        ],
        exact_duplicate_of=image["exact_duplicate_of"],
        duplicates_checked_at=image["duplicates_checked_at"],
        mode=image.get("mode"),
        frames=image.get("frames"),
        phash=_hash_hex(image.get("phash")),
        dhash=_hash_hex(image.get("dhash")),
        exif=_exif_view(image),
        duplicates=[DuplicateView(**d) for d in record.get("duplicates", [])],
        similar_stack=image.get("similar_stack"),
    )


def _hash_hex(value: int | None) -> str | None:
    # Stored as a signed bigint (two's complement); shown as the unsigned 64 bits.
    return None if value is None else f"{value % 2**64:016x}"


def _exif_view(image: dict[str, Any]) -> ExifView | None:
    if image.get("phash") is None:
        return None  # the hasher has not run yet: unknown, not absent
    gps = None
    if image.get("gps_latitude") is not None:
        gps = GpsView(
            latitude=image["gps_latitude"],
            longitude=image["gps_longitude"],
            altitude_m=image.get("gps_altitude_m"),
        )
    return ExifView(
        captured_at=image.get("captured_at"),
        captured_offset=image.get("captured_offset"),
        camera_make=image.get("camera_make"),
        camera_model=image.get("camera_model"),
        orientation=image.get("orientation"),
        gps=gps,
    )


class ImageSummary(BaseModel):
    id: UUID
    url: str
    status: ImageStatus
    stages: dict[Stage, StageStatus]
    content_type: str
    byte_size: int
    sha256: str
    # Bytes after the end of the image data, kept in the original: a motion photo's
    # video, an editor's padding. 0 when the file ends with its image (and for TIFF,
    # which has no end to measure from).
    trailing_bytes: int = 0
    format: str | None
    width: int | None
    height: int | None
    created_at: datetime


class ImagePage(BaseModel):
    items: list[ImageSummary]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: str | None


class ReprocessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Empty or omitted: every stage.
    stages: list[Stage] = Field(default_factory=list, max_length=len(Stage))


class ReprocessAccepted(BaseModel):
    id: UUID
    stages: dict[Stage, StageStatus]
