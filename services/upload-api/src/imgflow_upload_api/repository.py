"""The API's queries: record an accepted upload with its jobs, and read an image's state.

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
from imgflow_upload_api.duplicates import fetch_duplicates


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


async def fetch_image(
    conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID
) -> dict[str, Any] | None:
    image = await conn.fetchrow(
        """SELECT i.*, d.exact_duplicate_of, d.checked_at AS duplicates_checked_at
             FROM images AS i LEFT JOIN duplicate_checks AS d ON d.image_id = i.id
            WHERE i.id = $1 AND i.tenant_id = $2""",
        image_id,
        tenant_id,
    )
    if image is None:
        return None
    stages = await conn.fetch(
        """SELECT stage, status, attempts, error, queued_at, started_at, finished_at
             FROM image_stages WHERE image_id = $1""",
        image_id,
    )
    renditions = await conn.fetch(
        """SELECT size, object_key, format, width, height, byte_size
             FROM renditions WHERE image_id = $1 ORDER BY size""",
        image_id,
    )
    return {
        "image": dict(image),
        "stages": [dict(s) for s in stages],
        "renditions": [dict(r) for r in renditions],
        "duplicates": await fetch_duplicates(conn, image_id),
    }
