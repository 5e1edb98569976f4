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
    row = await conn.fetchrow(
        """SELECT image_id, status, sha256 FROM idempotency_keys
            WHERE tenant_id = $1 AND key = $2
              AND created_at > now() - make_interval(secs => $3)""",
        tenant_id,
        key,
        ttl_s,
    )
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
    recorded = await conn.fetchval(
        """INSERT INTO idempotency_keys (tenant_id, key, sha256, image_id, status)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (tenant_id, key) DO UPDATE
              SET sha256 = EXCLUDED.sha256, image_id = EXCLUDED.image_id,
                  status = EXCLUDED.status, created_at = now()
            WHERE idempotency_keys.created_at <= now() - make_interval(secs => $6)
           RETURNING true""",
        tenant_id,
        key,
        sha256,
        answer.image_id,
        answer.status,
        ttl_s,
    )
    if not recorded:
        raise KeyTaken(key)


async def forget_expired(conn: asyncpg.Connection, ttl_s: float) -> int:
    status = await conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at <= now() - make_interval(secs => $1)",
        ttl_s,
    )
    return int(status.split()[-1])
