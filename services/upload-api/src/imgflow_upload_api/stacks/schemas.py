"""Similar stacks as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from imgflow_upload_api.duplicates.schemas import CheckEvidence, DuplicateMethod, ThumbnailLink

PickReason = Literal["sharpest", "largest", "most-metadata", "earliest-upload"]


class SuggestedPick(BaseModel):
    id: UUID
    # Why, the deciding criterion first: the sharpest (variance of the Laplacian), then
    # the most pixels, then the most metadata (capture time, camera, orientation, GPS).
    reasons: list[PickReason]


class StackMember(BaseModel):
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
    created_at: datetime
    # Variance of the Laplacian of the analysis copy (higher: sharper); null until the
    # deduper has measured it.
    sharpness: float | None
    # The duplicate group the member belongs to (GET /v1/duplicate-groups/{id}), if any:
    # a stack holds whole duplicate groups.
    duplicate_group_id: UUID | None


class StackEvidence(CheckEvidence):
    """A pair between two members: a copy (``duplicate``) or another picture of the scene
    (``similar``), with the signals and the basis in words that decided it."""

    a: UUID
    b: UUID
    relation: Literal["duplicate", "similar"]
    method: DuplicateMethod | None  # duplicates only
    score: float | None  # duplicates only
    cosine: float | None
    view_cosine: float | None
    phash_distance: int | None
    found_at: datetime


class StackResolution(BaseModel):
    """How a person resolved the stack's current version (null while open)."""

    resolved_at: datetime
    kept: UUID | None


class SimilarStackView(BaseModel):
    id: UUID
    # Goes up whenever the members or the resolution change; name it when resolving.
    version: int
    created_at: datetime
    updated_at: datetime
    members: list[StackMember]
    evidence: list[StackEvidence]
    suggested_pick: SuggestedPick
    resolution: StackResolution | None


class SimilarStackSummary(BaseModel):
    id: UUID
    url: str
    version: int
    size: int  # members
    created_at: datetime
    updated_at: datetime
    suggested_pick: SuggestedPick
    resolution: StackResolution | None


class SimilarStackPage(BaseModel):
    items: list[SimilarStackSummary]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: str | None


class StackResolveRequest(BaseModel):
    """Keep a pick (nothing is trashed unless named in ``trash``); or say the members are
    not one scene (``dismiss``)."""

    model_config = ConfigDict(extra="forbid")

    # The version the decision was made on: a stack changed since is a 409.
    version: int = Field(ge=1, le=2**31 - 1)
    # The member kept: the stack is marked resolved on it.
    keep: UUID | None = None
    # Members to trash, only those named: the other frames of a burst are photos too.
    trash: list[UUID] = Field(default_factory=list, max_length=1000)
    # "Not the same scene": members of different duplicate groups are never stacked
    # together again (no keep or trash with it).
    dismiss: bool = False


class StackResolveAnswer(BaseModel):
    stack_id: UUID
    # The stack's version after the resolve (resolved: a new one); null when it is gone
    # (dismissed, or what is left is no stack: one duplicate group or one image).
    version: int | None
    kept: UUID | None
    trashed: list[UUID]
    dismissed: bool
