"""Task payloads: small, versioned JSON validated on both ends. Never image bytes."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from imgflow_contracts.queues import Stage

PAYLOAD_VERSION = 1


class ImageJob(BaseModel):
    """One stage of work on one stored original."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = PAYLOAD_VERSION
    image_id: UUID
    stage: Stage
    object_key: str = Field(min_length=1, max_length=512)

    def to_message(self) -> dict[str, Any]:
        """The JSON-safe kwargs a Celery task receives."""
        return self.model_dump(mode="json")
