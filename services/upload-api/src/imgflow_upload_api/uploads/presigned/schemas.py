"""Presigned uploads as the API shows them: the request, the ticket, the state."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from imgflow_upload_api.uploads.presigned.repository import UploadState


class UploadRequest(BaseModel):
    byte_size: int = Field(gt=0, description="The exact size of the file, in bytes.")
    sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="SHA-256 of the file (hex); the stored bytes must have it.",
    )
    content_type: str | None = Field(
        default=None,
        max_length=255,
        description="Recorded only: the format is read from the bytes themselves.",
    )


class PartUrl(BaseModel):
    part_number: int
    url: str
    offset: int = Field(description="Where in the file this part starts.")
    byte_size: int


class UploadTicket(BaseModel):
    id: UUID
    state: UploadState
    byte_size: int
    sha256: str
    expires_at: datetime
    method: Literal["PUT"] = "PUT"
    # A single PUT of the whole file to ``url``; or, for a multipart upload, one PUT per
    # part to its URL (any order, in parallel), then complete.
    url: str | None
    part_size: int | None
    parts: list[PartUrl]
    complete_url: str


class UploadStatus(BaseModel):
    id: UUID
    state: UploadState
    byte_size: int
    sha256: str
    multipart: bool
    expires_at: datetime
    image_id: UUID | None
    error: str | None
