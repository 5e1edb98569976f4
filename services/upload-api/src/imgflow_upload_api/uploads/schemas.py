"""What an accepted upload answers (POST /v1/images, a presigned upload's completion)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel

from imgflow_contracts.queues import Stage
from imgflow_upload_api.images.schemas import ImageStatus, StageStatus, overall_status


class UploadAccepted(BaseModel):
    id: UUID
    status: ImageStatus
    sha256: str
    byte_size: int
    content_type: str
    # Bytes stored after the end of the image data (a motion photo's video, padding).
    trailing_bytes: int = 0
    stages: dict[Stage, StageStatus]
    # Set when identical bytes of this tenant were already an image: that image's id
    # (which is also ``id``; nothing new was stored).
    duplicate_of: UUID | None = None


def upload_accepted(summary: dict[str, Any], *, duplicate: bool) -> UploadAccepted:
    stages = summary["stages"]
    return UploadAccepted(
        id=summary["id"],
        status=overall_status(list(stages.values())),
        sha256=summary["sha256"],
        byte_size=summary["byte_size"],
        content_type=summary["content_type"],
        trailing_bytes=summary.get("trailing_bytes") or 0,
        stages=stages,
        duplicate_of=summary["id"] if duplicate else None,
    )
