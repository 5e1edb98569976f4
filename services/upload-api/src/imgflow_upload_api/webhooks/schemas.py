"""Webhooks and their deliveries as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, WithJsonSchema

from imgflow_upload_api.webhooks.service import EVENT_CHOICES, MAX_URL_LENGTH, URL_PATTERN

# Documented here, checked by webhooks.service (its own 422 codes, not FastAPI's).
_EVENTS_SCHEMA = {
    "anyOf": [
        {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(EVENT_CHOICES)}},
        {"type": "null"},
    ]
}


class WebhookRequest(BaseModel):
    url: str = Field(
        description="Where deliveries are POSTed: an http:// or https:// URL.",
        json_schema_extra={"maxLength": MAX_URL_LENGTH, "pattern": URL_PATTERN},
    )
    events: Annotated[list[str] | None, WithJsonSchema(_EVENTS_SCHEMA)] = Field(
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
    state: Literal["active", "paused", "disabled"] = Field(
        description="active: deliveries go. paused: after consecutive failures; deliveries "
        "wait while one probe is sent at a growing interval, and its success resumes. "
        "disabled: failing too long; nothing goes until POST /v1/webhooks/{id}/enable."
    )
    state_since: datetime = Field(description="When the webhook entered its state.")
    consecutive_failures: int = Field(description="Failed attempts since the last success.")
    last_error: str | None = Field(description="The last failed attempt's error.")
    last_error_at: datetime | None = Field(description="When the last attempt failed.")
    next_probe_at: datetime | None = Field(
        description="While paused: when the next probe (its oldest pending delivery) goes."
    )
    pending_deliveries: int = Field(description="Deliveries not yet delivered or failed.")
    backlog_dropped: int = Field(
        default=0,
        description="Deliveries dropped unsent, the oldest first, because more were waiting "
        "for this webhook while it was disabled than the deployment keeps "
        "(IMGFLOW_WEBHOOK_DISABLED_BACKLOG_MAX, 10,000 by default); since it was registered.",
    )


class WebhookCreated(WebhookView):
    # Shown once: keep it to verify the Imgflow-Signature header of each delivery.
    secret: str


class WebhookList(BaseModel):
    items: list[WebhookView]


class WebhookEnableRequest(BaseModel):
    backlog: Literal["deliver", "drop"] = Field(
        default="deliver",
        description="The pending deliveries: `deliver` them (in the order they were queued) "
        "or `drop` them.",
    )


class WebhookEnabled(WebhookView):
    dropped_deliveries: int = Field(description="Pending deliveries dropped by this call.")


class DeliveryView(BaseModel):
    id: UUID
    event_id: int
    type: str
    status: Literal["pending", "delivered", "failed", "dropped"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]


class DeliveryList(BaseModel):
    items: list[DeliveryView]
