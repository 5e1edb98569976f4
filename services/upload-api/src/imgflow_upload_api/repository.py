"""The API's queries: record an accepted upload with its jobs, and read an image's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_contracts.db import outbox
from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_upload_api.duplicates import fetch_duplicates


@dataclass(frozen=True)
class NewImage:
    id: UUID
    object_key: str
    content_type: str
    byte_size: int
    sha256: str


async def insert_image_with_jobs(
    conn: asyncpg.Connection, image: NewImage, trace_context: dict[str, str]
) -> list[int]:
    """Write the image, its pending stages and their outbox rows in one transaction.

    Returns the outbox ids, so the caller can relay exactly these jobs right away.
    """
    jobs = [ImageJob(image_id=image.id, stage=s, object_key=image.object_key) for s in Stage]
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO images (id, object_key, content_type, byte_size, sha256)
               VALUES ($1, $2, $3, $4, $5)""",
            image.id,
            image.object_key,
            image.content_type,
            image.byte_size,
            image.sha256,
        )
        await conn.executemany(
            "INSERT INTO image_stages (image_id, stage) VALUES ($1, $2)",
            [(image.id, job.stage.value) for job in jobs],
        )
        return await outbox.enqueue(conn, jobs, trace_context)


async def fetch_image(conn: asyncpg.Connection, image_id: UUID) -> dict[str, Any] | None:
    image = await conn.fetchrow(
        """SELECT i.*, d.exact_duplicate_of, d.checked_at AS duplicates_checked_at
             FROM images AS i LEFT JOIN duplicate_checks AS d ON d.image_id = i.id
            WHERE i.id = $1""",
        image_id,
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
