"""What the API answers, as typed, immutable objects.

Each model names the schema of ``openapi.json`` it mirrors (``SCHEMA``); a test checks
every field against it, so the client cannot drift from the server. The event models
have no schema there yet: the streams are declared as plain text (see events.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

ImageStatus = Literal["processing", "ready", "failed"]
StageStatus = Literal["pending", "running", "done", "failed"]
StageName = Literal["thumbnails", "hashing", "dedupe"]
UploadState = Literal["pending", "completed", "failed", "expired"]
DuplicateMethod = Literal["sha256", "cnn", "phash", "cnn+phash"]

STAGES: tuple[StageName, ...] = ("thumbnails", "hashing", "dedupe")


@dataclass(frozen=True)
class StageView:
    SCHEMA: ClassVar[str] = "StageView"
    status: StageStatus
    attempts: int
    error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class Rendition:
    SCHEMA: ClassVar[str] = "RenditionView"
    url: str
    size: int
    width: int
    height: int
    format: str
    byte_size: int
    object_key: str


@dataclass(frozen=True)
class Gps:
    SCHEMA: ClassVar[str] = "GpsView"
    latitude: float
    longitude: float
    altitude_m: float | None


@dataclass(frozen=True)
class Exif:
    SCHEMA: ClassVar[str] = "ExifView"
    captured_at: datetime | None
    captured_offset: str | None
    camera_make: str | None
    camera_model: str | None
    orientation: int | None
    gps: Gps | None


@dataclass(frozen=True)
class Duplicate:
    SCHEMA: ClassVar[str] = "DuplicateView"
    id: UUID
    method: DuplicateMethod
    score: float
    cosine: float | None
    view_cosine: float | None
    phash_distance: int | None
    found_at: datetime

    @property
    def is_exact(self) -> bool:
        return self.method == "sha256"


@dataclass(frozen=True)
class Duplicates:
    SCHEMA: ClassVar[str] = "DuplicatesView"
    id: UUID
    checked_at: datetime | None
    duplicates: list[Duplicate]
    group: list[UUID]
    group_truncated: bool


@dataclass(frozen=True)
class Image:
    """GET /v1/images/{id}: the image, every stage, renditions and what the hasher read."""

    SCHEMA: ClassVar[str] = "ImageView"
    id: UUID
    status: ImageStatus
    original_url: str
    content_type: str
    byte_size: int
    sha256: str
    format: str | None
    width: int | None
    height: int | None
    created_at: datetime
    stages: dict[str, StageView]
    renditions: list[Rendition]
    exact_duplicate_of: UUID | None
    duplicates_checked_at: datetime | None
    duplicates: list[Duplicate]
    mode: str | None = None
    frames: int | None = None
    exif: Exif | None = None
    phash: str | None = None
    dhash: str | None = None

    @property
    def finished(self) -> bool:
        """Every stage done or failed (``status`` turns ``failed`` at the first failure)."""
        return all(s.status in ("done", "failed") for s in self.stages.values())


@dataclass(frozen=True)
class ImageSummary:
    """One item of GET /v1/images."""

    SCHEMA: ClassVar[str] = "ImageSummary"
    id: UUID
    url: str
    status: ImageStatus
    stages: dict[str, StageStatus]
    content_type: str
    byte_size: int
    sha256: str
    format: str | None
    width: int | None
    height: int | None
    created_at: datetime


@dataclass(frozen=True)
class ImagePage:
    SCHEMA: ClassVar[str] = "ImagePage"
    items: list[ImageSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class UploadAccepted:
    """POST /v1/images (or completing a presigned upload). ``created`` is False when the
    bytes were an image already (200), and then ``duplicate_of`` names it."""

    SCHEMA: ClassVar[str] = "UploadAccepted"
    id: UUID
    status: ImageStatus
    sha256: str
    byte_size: int
    content_type: str
    stages: dict[str, StageStatus]
    duplicate_of: UUID | None = None
    # Not part of the body: the HTTP status said it (201 created, 200 existing).
    created: bool = field(default=True, metadata={"answer": "status"})


@dataclass(frozen=True)
class PartUrl:
    SCHEMA: ClassVar[str] = "PartUrl"
    part_number: int
    url: str
    offset: int
    byte_size: int


@dataclass(frozen=True)
class UploadTicket:
    """POST /v1/uploads: where to PUT the bytes (``url``, or one URL per part)."""

    SCHEMA: ClassVar[str] = "UploadTicket"
    id: UUID
    state: UploadState
    byte_size: int
    sha256: str
    expires_at: datetime
    url: str | None
    part_size: int | None
    parts: list[PartUrl]
    complete_url: str
    method: str = "PUT"


@dataclass(frozen=True)
class UploadStatus:
    SCHEMA: ClassVar[str] = "UploadStatus"
    id: UUID
    state: UploadState
    byte_size: int
    sha256: str
    multipart: bool
    expires_at: datetime
    image_id: UUID | None
    error: str | None


@dataclass(frozen=True)
class ReprocessAccepted:
    SCHEMA: ClassVar[str] = "ReprocessAccepted"
    id: UUID
    stages: dict[str, StageStatus]


@dataclass(frozen=True)
class Webhook:
    SCHEMA: ClassVar[str] = "WebhookView"
    id: UUID
    url: str
    events: list[str]
    created_at: datetime


@dataclass(frozen=True)
class WebhookCreated:
    """``secret`` signs the deliveries; the server shows it only in this answer."""

    SCHEMA: ClassVar[str] = "WebhookCreated"
    id: UUID
    url: str
    events: list[str]
    created_at: datetime
    secret: str


@dataclass(frozen=True)
class Delivery:
    SCHEMA: ClassVar[str] = "DeliveryView"
    id: UUID
    event_id: int
    type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]


# -- server-sent events (no schema in openapi.json: see events.py) -----------------------


@dataclass(frozen=True)
class ServerEvent:
    """One message of an event stream: ``event`` is ``open``, ``state``, ``stage`` or
    ``image``; ``data`` its JSON."""

    id: str | None
    event: str
    data: dict[str, Any]

    @property
    def image_id(self) -> str | None:
        value = self.data.get("image_id")
        return str(value) if value is not None else None

    @property
    def type(self) -> str:
        """``image.ready``, ``stage.done``...; ``open`` and ``state`` for those messages."""
        return str(self.data.get("type") or self.event)
