"""Webhooks and their deliveries as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field


class WebhookRequest(BaseModel):
    url: str = Field(description="Where deliveries are POSTed: an http:// or https:// URL.")
    events: list[str] | None = Field(
        default=None,
        description="Event types or patterns (image.ready, image.failed, image.created, "
        "image.deleted, stage.pending|running|done|failed, image.*, stage.*, *); "
        "default image.ready and image.failed.",
    )


class WebhookView(BaseModel):
    id: UUID
    url: str
    events: list[str]
    created_at: datetime


class WebhookCreated(WebhookView):
    # Shown once: keep it to verify the Imgflow-Signature header of each delivery.
    secret: str


class WebhookList(BaseModel):
    items: list[WebhookView]


class DeliveryView(BaseModel):
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


class DeliveryList(BaseModel):
    items: list[DeliveryView]
