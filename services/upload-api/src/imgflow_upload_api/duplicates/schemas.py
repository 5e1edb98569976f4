"""Duplicates of an image as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

DuplicateMethod = Literal["sha256", "cnn", "phash", "cnn+phash"]


class DuplicateView(BaseModel):
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
    group: list[UUID]
    group_truncated: bool
