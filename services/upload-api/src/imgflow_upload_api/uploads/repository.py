"""The uploads' queries: record an accepted upload with its jobs, read back what it
answers, and the Idempotency-Key table.

Every read takes the caller's tenant: an image of another tenant is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage, first_stages
from imgflow_runtime.db import outbox


@dataclass(frozen=True)
class NewImage:
    id: UUID
    tenant_id: UUID
    object_key: str
    content_type: str
    byte_size: int
    sha256: str


async def insert_image_with_jobs(
    conn: asyncpg.Connection, image: NewImage, trace_context: dict[str, str]
) -> list[int] | None:
    """Write the image, its pending stages and their outbox rows (in the caller's transaction).

    Returns the outbox ids, so the caller can relay exactly these jobs right away, or None
    when an image with the same object key (the same bytes of the same tenant) exists.
    """
    inserted = await conn.fetchval(
        """INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (object_key) DO NOTHING RETURNING true""",
        image.id,
        image.tenant_id,
        image.object_key,
        image.content_type,
        image.byte_size,
        image.sha256,
    )
    if not inserted:
        return None
    await conn.executemany(
        "INSERT INTO image_stages (image_id, stage) VALUES ($1, $2)",
        [(image.id, stage.value) for stage in Stage],
    )
    # The rest are enqueued by the stage they wait for (queues.AFTER).
    jobs = [
        ImageJob(image_id=image.id, stage=s, object_key=image.object_key)
        for s in first_stages(list(Stage))
    ]
    return await outbox.enqueue(conn, jobs, trace_context)


async def image_with_key(conn: asyncpg.Connection, object_key: str) -> UUID | None:
    return await conn.fetchval("SELECT id FROM images WHERE object_key = $1", object_key)


async def key_is_referenced(conn: asyncpg.Connection, object_key: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM images WHERE object_key = $1)", object_key
        )
    )


async def fetch_summary(
    conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID
) -> dict[str, Any] | None:
    """What an upload answers about an image: its facts and each stage's status."""
    row = await conn.fetchrow(
        """SELECT i.id, i.sha256, i.byte_size, i.content_type,
                  jsonb_object_agg(s.stage, s.status) AS stages
             FROM images AS i JOIN image_stages AS s ON s.image_id = i.id
            WHERE i.id = $1 AND i.tenant_id = $2
            GROUP BY i.id""",
        image_id,
        tenant_id,
    )
    return None if row is None else dict(row)


async def find_key(
    conn: asyncpg.Connection, tenant_id: UUID, key: str, ttl_s: float
) -> asyncpg.Record | None:
    """The live record of an Idempotency-Key: ``image_id``, ``status``, ``sha256``."""
    return await conn.fetchrow(
        """SELECT image_id, status, sha256 FROM idempotency_keys
            WHERE tenant_id = $1 AND key = $2
              AND created_at > now() - make_interval(secs => $3)""",
        tenant_id,
        key,
        ttl_s,
    )


async def insert_key(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    key: str,
    sha256: str,
    answer: tuple[UUID, int],
    ttl_s: float,
) -> bool:
    """Record an Idempotency-Key's answer (image id, status); False while a live record of
    the key exists (an expired one is replaced)."""
    return bool(
        await conn.fetchval(
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
            answer[0],
            answer[1],
            ttl_s,
        )
    )


async def forget_expired_keys(conn: asyncpg.Connection, ttl_s: float) -> int:
    status = await conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at <= now() - make_interval(secs => $1)",
        ttl_s,
    )
    return int(status.split()[-1])
