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
DuplicateMethod = Literal["sha256", "cnn", "phash", "cnn+phash", "geometry"]
KeeperReason = Literal[
    "most-pixels",
    "original-format",
    "largest-file",
    "earliest-capture",
    "has-exif",
    "earliest-upload",
]
PickReason = Literal["sharpest", "largest", "most-metadata", "earliest-upload"]
StackRelation = Literal["duplicate", "similar"]

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
class CheckEvidence:
    """What decided a pair, beside its CNN and pHash figures: the geometric check's
    figures (None where it did not run or did not measure one) and the basis in words."""

    inliers: int | None  # matches consistent with one similarity transform
    iou: float | None  # the frames' intersection over union once aligned
    agreement: float | None  # share of the shared cells whose pixels still agree
    motion: float | None  # how far the shared cells move apart, px of the 512-px copy
    second_motion: int | None  # left-out matches that agree on a second motion
    basis: str | None  # the signals and thresholds that decided, in words


@dataclass(frozen=True)
class Duplicate(CheckEvidence):
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
    # The stored duplicate group holding the image (get_duplicate_group), if any.
    group_id: UUID | None = None
    # The similar stack holding the image (get_similar_stack), if any.
    similar_stack: UUID | None = None


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
    # Set while the image is in the trash (a resolved duplicate group put it there).
    trashed_at: datetime | None = None
    # The similar stack holding the image (get_similar_stack), if any.
    similar_stack: UUID | None = None

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
    """``state``: active (deliveries go), paused (after consecutive failures: deliveries
    wait, one probe at a growing interval resumes it), disabled (after a long outage:
    nothing goes until :meth:`Client.enable_webhook`). Defaults for older servers."""

    SCHEMA: ClassVar[str] = "WebhookView"
    id: UUID
    url: str
    events: list[str]
    created_at: datetime
    state: str = "active"
    state_since: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    next_probe_at: datetime | None = None
    pending_deliveries: int = 0
    # dropped unsent (the oldest first) while disabled, past the deployment's backlog cap
    backlog_dropped: int = 0


@dataclass(frozen=True)
class WebhookEnabled(Webhook):
    SCHEMA: ClassVar[str] = "WebhookEnabled"
    dropped_deliveries: int = 0


@dataclass(frozen=True)
class WebhookCreated(Webhook):
    """``secret`` signs the deliveries; the server shows it only in this answer."""

    SCHEMA: ClassVar[str] = "WebhookCreated"
    secret: str = field(kw_only=True)


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


# -- duplicate groups -------------------------------------------------------------------


@dataclass(frozen=True)
class LimitValues:
    """A tenant's limits; ``None``: no limit (or, in an operator's view, the default)."""

    SCHEMA: ClassVar[str] = "LimitValues"
    weight: int | None = None
    upload_rate_per_s: float | None = None
    upload_burst: int | None = None
    upload_concurrency: int | None = None
    max_queued_jobs: int | None = None
    max_images: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class Usage:
    """What the tenant holds and has waiting (GET /v1/usage), and the limits that apply."""

    SCHEMA: ClassVar[str] = "Usage"
    tenant: str
    images: int
    bytes: int
    queued_jobs: dict[str, int]
    uploads_in_progress: int
    limits: LimitValues


@dataclass(frozen=True)
class ThumbnailLink:
    SCHEMA: ClassVar[str] = "ThumbnailLink"
    size: int
    url: str


@dataclass(frozen=True)
class GroupMember:
    SCHEMA: ClassVar[str] = "GroupMember"
    id: UUID
    url: str
    original_url: str
    thumbnails: list[ThumbnailLink]  # the renditions made so far, smallest first
    content_type: str
    byte_size: int
    format: str | None
    width: int | None
    height: int | None
    captured_at: datetime | None
    has_exif: bool
    created_at: datetime


@dataclass(frozen=True)
class GroupEvidence(CheckEvidence):
    """A duplicate pair between two members, and the signal that decided it."""

    SCHEMA: ClassVar[str] = "GroupEvidence"
    a: UUID
    b: UUID
    method: DuplicateMethod
    score: float
    cosine: float | None
    view_cosine: float | None
    phash_distance: int | None
    found_at: datetime


@dataclass(frozen=True)
class SuggestedKeeper:
    """The member the server would keep; ``reasons`` has the deciding criterion first."""

    SCHEMA: ClassVar[str] = "SuggestedKeeper"
    id: UUID
    reasons: list[KeeperReason]


@dataclass(frozen=True)
class DuplicateGroupView:
    """GET /v1/duplicate-groups/{id}. ``version`` goes up whenever the members change:
    name it when resolving, so a decision is never applied to a group it was not made on."""

    SCHEMA: ClassVar[str] = "DuplicateGroupView"
    id: UUID
    version: int
    created_at: datetime
    updated_at: datetime
    members: list[GroupMember]
    evidence: list[GroupEvidence]
    suggested_keeper: SuggestedKeeper

    def member(self, image_id: UUID | str) -> GroupMember | None:
        wanted = UUID(str(image_id))
        return next((m for m in self.members if m.id == wanted), None)


@dataclass(frozen=True)
class DuplicateGroupSummary:
    """One item of GET /v1/duplicate-groups; ``size`` counts the members."""

    SCHEMA: ClassVar[str] = "DuplicateGroupSummary"
    id: UUID
    url: str
    version: int
    size: int
    created_at: datetime
    updated_at: datetime
    # The group view's suggestion; None from a server that lists no keeper (older than
    # this field).
    suggested_keeper: SuggestedKeeper | None = None


@dataclass(frozen=True)
class DuplicateGroupPage:
    SCHEMA: ClassVar[str] = "DuplicateGroupPage"
    items: list[DuplicateGroupSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class ResolveRequest:
    """The body of a resolve: keep some members and trash others, or ``dismiss`` (not
    duplicates: no keep or trash with it), decided on the group's ``version``."""

    SCHEMA: ClassVar[str] = "ResolveRequest"
    version: int
    keep: list[UUID] = field(default_factory=list)
    trash: list[UUID] = field(default_factory=list)
    dismiss: bool = False

    def to_json(self) -> dict[str, Any]:
        # Sorted and once each: the server answers a repeated resolve the same only when
        # the request is the same, and a rerun may name the images in another order.
        return {
            "version": self.version,
            "keep": _canonical(self.keep),
            "trash": _canonical(self.trash),
            "dismiss": self.dismiss,
        }


@dataclass(frozen=True)
class ResolveAnswer:
    """What a resolve did. ``version`` is the group's after it, or None when the group is
    gone (dismissed, or fewer than two members left). The same resolve again (same
    version, same decision) answers the same."""

    SCHEMA: ClassVar[str] = "ResolveAnswer"
    group_id: UUID
    version: int | None
    kept: list[UUID]
    trashed: list[UUID]
    dismissed: bool


# -- similar stacks ---------------------------------------------------------------------


@dataclass(frozen=True)
class StackMember:
    SCHEMA: ClassVar[str] = "StackMember"
    id: UUID
    url: str
    original_url: str
    thumbnails: list[ThumbnailLink]
    content_type: str
    byte_size: int
    format: str | None
    width: int | None
    height: int | None
    captured_at: datetime | None
    created_at: datetime
    sharpness: float | None  # variance of the Laplacian: higher is sharper
    duplicate_group_id: UUID | None  # a stack holds whole duplicate groups


@dataclass(frozen=True)
class StackEvidence(CheckEvidence):
    """A pair between two members: a copy or another picture of the scene, and why."""

    SCHEMA: ClassVar[str] = "StackEvidence"
    a: UUID
    b: UUID
    relation: StackRelation
    method: DuplicateMethod | None
    score: float | None
    cosine: float | None
    view_cosine: float | None
    phash_distance: int | None
    found_at: datetime


@dataclass(frozen=True)
class SuggestedPick:
    """The member the server would keep; ``reasons`` has the deciding criterion first."""

    SCHEMA: ClassVar[str] = "SuggestedPick"
    id: UUID
    reasons: list[PickReason]


@dataclass(frozen=True)
class StackResolution:
    SCHEMA: ClassVar[str] = "StackResolution"
    resolved_at: datetime
    kept: UUID | None


@dataclass(frozen=True)
class SimilarStackView:
    """GET /v1/similar-stacks/{id}. ``version`` goes up whenever the members or the
    resolution change: name it when resolving."""

    SCHEMA: ClassVar[str] = "SimilarStackView"
    id: UUID
    version: int
    created_at: datetime
    updated_at: datetime
    members: list[StackMember]
    evidence: list[StackEvidence]
    suggested_pick: SuggestedPick
    resolution: StackResolution | None

    def member(self, image_id: UUID | str) -> StackMember | None:
        wanted = UUID(str(image_id))
        return next((m for m in self.members if m.id == wanted), None)


@dataclass(frozen=True)
class SimilarStackSummary:
    SCHEMA: ClassVar[str] = "SimilarStackSummary"
    id: UUID
    url: str
    version: int
    size: int
    created_at: datetime
    updated_at: datetime
    suggested_pick: SuggestedPick
    resolution: StackResolution | None


@dataclass(frozen=True)
class SimilarStackPage:
    SCHEMA: ClassVar[str] = "SimilarStackPage"
    items: list[SimilarStackSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class StackResolveRequest:
    """Keep a pick and trash only the members named; or ``dismiss`` (not one scene)."""

    SCHEMA: ClassVar[str] = "StackResolveRequest"
    version: int
    keep: UUID | None = None
    trash: list[UUID] = field(default_factory=list)
    dismiss: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "keep": None if self.keep is None else str(UUID(str(self.keep))),
            "trash": _canonical(self.trash),
            "dismiss": self.dismiss,
        }


@dataclass(frozen=True)
class StackResolveAnswer:
    """What a resolve did; ``version`` is None when the stack is gone."""

    SCHEMA: ClassVar[str] = "StackResolveAnswer"
    stack_id: UUID
    version: int | None
    kept: UUID | None
    trashed: list[UUID]
    dismissed: bool


def _canonical(ids: list[UUID]) -> list[str]:
    return sorted({str(UUID(str(i))) for i in ids})


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
