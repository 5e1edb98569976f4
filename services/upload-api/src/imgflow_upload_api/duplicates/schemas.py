"""Duplicates of an image as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

DuplicateMethod = Literal["sha256", "cnn", "phash", "cnn+phash", "geometry"]


class CheckEvidence(BaseModel):
    """What decided a pair, beside its CNN and pHash figures (docs/api/images.md, pair
    evidence): the geometric check's figures, each null where the check did not run or
    did not measure it, and the basis in words."""

    inliers: int | None  # matches consistent with one similarity transform
    iou: float | None  # the frames' intersection over union once aligned
    agreement: float | None  # share of the shared cells whose pixels still agree
    motion: float | None  # how far the shared cells move apart, px of the 512-px copy
    second_motion: int | None  # left-out matches that agree on a second motion
    basis: str | None  # the signals and thresholds that decided, in words


class DuplicateView(CheckEvidence):
    id: UUID
    method: DuplicateMethod
    score: float
    cosine: float | None  # of the whole images
    view_cosine: float | None  # best whole frame against the other's 80 % crops
    phash_distance: int | None
    found_at: datetime


class DuplicatesView(BaseModel):
    id: UUID
    # When the deduper last checked this image; null while its dedupe stage is pending.
    checked_at: datetime | None
    duplicates: list[DuplicateView]
    # The stored duplicate group holding the image (GET /v1/duplicate-groups/{group_id}),
    # or just the image when it is in none.
    group: list[UUID]
    group_truncated: bool
    group_id: UUID | None = None
    # The similar stack holding the image (GET /v1/similar-stacks/{id}), as the image
    # view names it: other pictures of the same scene. Null when it is in none.
    similar_stack: UUID | None = None


KeeperReason = Literal[
    "most-pixels",
    "original-format",
    "largest-file",
    "earliest-capture",
    "has-exif",
    "earliest-upload",
]


class ThumbnailLink(BaseModel):
    size: int
    url: str


class GroupMember(BaseModel):
    id: UUID
    url: str  # the image view
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


class GroupEvidence(CheckEvidence):
    """A duplicate pair between two members: the signal that decided it, and each score."""

    a: UUID
    b: UUID
    method: DuplicateMethod
    score: float
    cosine: float | None
    view_cosine: float | None
    phash_distance: int | None
    found_at: datetime


class SuggestedKeeper(BaseModel):
    id: UUID
    # Why, the deciding criterion first: most pixels, then an original format over a
    # re-encode (WebP, GIF, AVIF), the larger file, the earliest capture, EXIF present.
    reasons: list[KeeperReason]


class DuplicateGroupView(BaseModel):
    id: UUID
    # Goes up whenever the members change; name it when acting on the group.
    version: int
    created_at: datetime
    updated_at: datetime
    members: list[GroupMember]
    evidence: list[GroupEvidence]
    suggested_keeper: SuggestedKeeper


class DuplicateGroupSummary(BaseModel):
    id: UUID
    url: str
    version: int
    size: int  # members
    created_at: datetime
    updated_at: datetime
    # The detail's suggestion, so a listing needs no request per group.
    suggested_keeper: SuggestedKeeper


class DuplicateGroupPage(BaseModel):
    items: list[DuplicateGroupSummary]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: str | None


class ResolveRequest(BaseModel):
    """Keep some members, trash others; or say the members are not duplicates at all."""

    model_config = ConfigDict(extra="forbid")

    # The version the decision was made on: a group changed since is a 409.
    version: int = Field(ge=1, le=2**31 - 1)
    keep: list[UUID] = Field(default_factory=list, max_length=1000)
    trash: list[UUID] = Field(default_factory=list, max_length=1000)
    # "Not duplicates": every two members are never grouped together again (no keep or
    # trash with it).
    dismiss: bool = False


class ResolveAnswer(BaseModel):
    group_id: UUID
    # The group's version after the resolve; null when it is gone (fewer than two
    # members left, or dismissed).
    version: int | None
    kept: list[UUID]
    trashed: list[UUID]
    dismissed: bool
