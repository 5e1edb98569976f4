"""Idempotency-Key on uploads: a retried request answers with the image of the first.

The key is remembered per tenant with the SHA-256 of the body it came with, so the same
key with other bytes is refused (422) rather than silently answered with the wrong image.
Keys expire after ``ttl_s``; an expired key starts afresh.

It costs no statement of its own: the record is read by the query that looks for the
bytes before storing (``repository.find_prior``) and written by the one that records the
image (``repository.record_image``), which refuses a key recorded meanwhile. A replay is
answered with the header ``Idempotent-Replayed: true``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from imgflow_upload_api.problems import Problem
from imgflow_upload_api.uploads.repository import KeyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Visible ASCII without spaces: what clients put there (UUIDs, ULIDs, hashes) and
# nothing that could smuggle anything into logs.
_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Remembered:
    image_id: UUID
    status: int


class KeyTaken(Exception):
    """Another request recorded this key first; nothing of this one was recorded."""


def parse_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not _VALID.match(raw):
        raise Problem(
            400,
            "bad-idempotency-key",
            "Bad Idempotency-Key",
            f"{HEADER} must be 1-255 visible ASCII characters",
        )
    return raw


def replay(record: KeyRecord, sha256: str) -> Remembered:
    """The first answer to the key of ``record``; 422 if it came with other bytes."""
    if record.sha256 != sha256:
        raise Problem(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            f"this {HEADER} was used for a different body; use a new key for new content",
            image_id=str(record.image_id),
        )
    return Remembered(record.image_id, record.status)
