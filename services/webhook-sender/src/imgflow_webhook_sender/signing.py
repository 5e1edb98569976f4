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

_GROUP = "duplicate_group."
# what `data` holds: of an image or stage event, or (True) of a duplicate group's
_DATA_KEYS = {
    False: ("image_id", "stage", "status", "error"),
    True: ("group_id", "version", "status"),
}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def delivery_body(delivery_id: UUID, event_type: str, event: dict[str, Any]) -> bytes:
    document = {
        "id": str(delivery_id),
        "type": event_type,
        "event_id": event["id"],
        "created_at": event["at"],
        "data": {k: event.get(k) for k in _DATA_KEYS[event_type.startswith(_GROUP)]},
    }
    return json.dumps(document, separators=(",", ":")).encode()
