"""Idempotency-Key on uploads: a retried request answers with the image of the first.

The key is remembered per tenant with the SHA-256 of the body it came with, so the same
key with other bytes is refused (422) rather than silently answered with the wrong image.
Keys expire after ``ttl_s``; an expired key starts afresh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from imgflow_upload_api.problems import Problem
from imgflow_upload_api.uploads import repository

HEADER = "Idempotency-Key"
# Visible ASCII without spaces: what clients put there (UUIDs, ULIDs, hashes) and
# nothing that could smuggle anything into logs.
_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Remembered:
    image_id: UUID
    status: int


class KeyTaken(Exception):
    """Another request recorded this key first (inside the caller's transaction)."""


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


async def recall(
    conn: asyncpg.Connection, tenant_id: UUID, key: str, sha256: str, ttl_s: float
) -> Remembered | None:
    """The first answer to ``key``, or None; 422 if it came with other bytes."""
    row = await repository.find_key(conn, tenant_id, key, ttl_s)
    if row is None:
        return None
    if row["sha256"] != sha256:
        raise Problem(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            f"this {HEADER} was used for a different body; use a new key for new content",
            image_id=str(row["image_id"]),
        )
    return Remembered(row["image_id"], row["status"])


async def remember(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    key: str,
    sha256: str,
    answer: Remembered,
    ttl_s: float,
) -> None:
    """Record the answer to ``key``; raises KeyTaken if a live record exists already."""
    answered = (answer.image_id, answer.status)
    recorded = await repository.insert_key(conn, tenant_id, key, sha256, answered, ttl_s)
    if not recorded:
        raise KeyTaken(key)
