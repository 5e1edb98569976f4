"""What a receiver gets: the body of a delivery (the same bytes on every attempt) and its
Stripe-style signature: ``Imgflow-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>" keyed with the webhook's secret>``."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from uuid import UUID

SIGNATURE_HEADER = "Imgflow-Signature"
EVENT_HEADER = "Imgflow-Event"
DELIVERY_HEADER = "Imgflow-Delivery"

# what `data` holds, by the event type's prefix; an image's or a stage's otherwise
_DATA_KEYS = {
    "duplicate_group.": ("group_id", "version", "status"),
    "similar_stack.": ("stack_id", "version", "status"),
}
_IMAGE_KEYS = ("image_id", "stage", "status", "error")


def _data_keys(event_type: str) -> tuple[str, ...]:
    prefix = event_type.split(".", 1)[0] + "."
    return _DATA_KEYS.get(prefix, _IMAGE_KEYS)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def delivery_body(delivery_id: UUID, event_type: str, event: dict[str, Any]) -> bytes:
    document = {
        "id": str(delivery_id),
        "type": event_type,
        "event_id": event["id"],
        "created_at": event["at"],
        "data": {k: event.get(k) for k in _data_keys(event_type)},
    }
    return json.dumps(document, separators=(",", ":")).encode()
