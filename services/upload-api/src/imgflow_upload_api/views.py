"""JSON views of an image: what GET /v1/images/{id} answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

from imgflow_contracts.queues import Stage

StageStatus = Literal["pending", "running", "done", "failed"]
ImageStatus = Literal["processing", "ready", "failed"]


class StageView(BaseModel):
    status: StageStatus
    attempts: int
    error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RenditionView(BaseModel):
    size: int
    width: int
    height: int
    format: str
    byte_size: int
    object_key: str


class ImageView(BaseModel):
    id: UUID
    status: ImageStatus
    content_type: str
    byte_size: int
    sha256: str
    format: str | None
    width: int | None
    height: int | None
    created_at: datetime
    stages: dict[Stage, StageView]
    renditions: list[RenditionView]
    exact_duplicate_of: UUID | None
    duplicates_checked_at: datetime | None


class UploadAccepted(BaseModel):
    id: UUID
    status: ImageStatus
    sha256: str
    byte_size: int
    content_type: str
    stages: dict[Stage, StageStatus]


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
        content_type=image["content_type"],
        byte_size=image["byte_size"],
        sha256=image["sha256"],
        format=image["format"],
        width=image["width"],
        height=image["height"],
        created_at=image["created_at"],
        stages=stages,
        renditions=[RenditionView(**r) for r in record["renditions"]],
        exact_duplicate_of=image["exact_duplicate_of"],
        duplicates_checked_at=image["duplicates_checked_at"],
    )
