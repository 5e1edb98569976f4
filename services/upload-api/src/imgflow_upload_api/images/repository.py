"""The images' queries: an image with its stages and renditions, pages of the listing,
what downloads and deletes need, and the reset of stages to run again.

Every read takes the caller's tenant: an image of another tenant is simply not found, and
neither is one being deleted (``deleting_since``, migration 0010).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_contracts.queues import Stage
from imgflow_runtime.db import resets
from imgflow_runtime.telemetry import current_context_carrier
from imgflow_upload_api.duplicates.repository import fetch_duplicates
from imgflow_upload_api.paging import Cursor

# The image's status from its stage rows, as schemas.overall_status computes it in Python.
_STATUS_SQL = """CASE WHEN bool_or(s.status = 'failed') THEN 'failed'
                      WHEN count(*) > 0 AND bool_and(s.status = 'done') THEN 'ready'
                      ELSE 'processing' END"""


async def fetch_image(
    conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID
) -> dict[str, Any] | None:
    image = await conn.fetchrow(
        """SELECT i.*, d.exact_duplicate_of, d.checked_at AS duplicates_checked_at,
                  st.stack_id AS similar_stack
             FROM images AS i LEFT JOIN duplicate_checks AS d ON d.image_id = i.id
             LEFT JOIN similar_stack_members AS st ON st.image_id = i.id
            WHERE i.id = $1 AND i.tenant_id = $2 AND i.deleting_since IS NULL""",
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


async def fetch_page(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    *,
    after: Cursor | None,
    status: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` summaries, newest first, strictly after the cursor's position."""
    # the trash is not listed, nor an image being deleted
    where = ["i.tenant_id = $1", "i.trashed_at IS NULL", "i.deleting_since IS NULL"]
    args: list[Any] = [tenant_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if after is not None:
        where.append(f"(i.created_at, i.id) < ({arg(after.at)}, {arg(after.id)})")
    if created_after is not None:
        where.append(f"i.created_at > {arg(created_after)}")
    if created_before is not None:
        where.append(f"i.created_at < {arg(created_before)}")
    if status is not None:
        where.append(f"st.status = {arg(status)}")
    source = "images"
    if status in ("failed", "processing"):
        # Such an image has a stage not done (its stages are written with it: 0013's
        # record_upload). Those stages are few whatever the tenant's size (migration
        # 0024's index): read them first and the images by their ids. Written as a
        # filter ("IN (subquery)" or "= ANY (ARRAY(...))") the planner walks the tenant's
        # images newest first and probes each, expecting the LIMIT to stop it early; a
        # tenant with few such images is then read whole. OFFSET 0 keeps the set apart.
        source = """(SELECT * FROM images WHERE id = ANY (ARRAY(
                         SELECT u.image_id FROM image_stages AS u WHERE u.status <> 'done'))
                     OFFSET 0)"""
    rows = await conn.fetch(
        f"""SELECT i.id, i.created_at, i.content_type, i.byte_size, i.sha256, i.format,
                   i.width, i.height, st.status, st.stages
              FROM {source} AS i
             CROSS JOIN LATERAL (
                   SELECT {_STATUS_SQL} AS status,
                          coalesce(jsonb_object_agg(s.stage, s.status), '{{}}') AS stages
                     FROM image_stages AS s WHERE s.image_id = i.id) AS st
             WHERE {" AND ".join(where)}
             ORDER BY i.created_at DESC, i.id DESC
             LIMIT {arg(limit)}""",
        *args,
    )
    return [dict(r) for r in rows]


async def original_of(
    conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID
) -> asyncpg.Record | None:
    """``object_key``, ``sha256`` and ``content_type`` of the tenant's image."""
    return await conn.fetchrow(
        """SELECT object_key, sha256, content_type FROM images
            WHERE id = $1 AND tenant_id = $2 AND deleting_since IS NULL""",
        image_id,
        tenant_id,
    )


async def rendition_keys(
    conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID
) -> dict[int, str] | None:
    """Size to object key of each rendition made so far; None for no such image."""
    rows = await conn.fetch(
        """SELECT r.size, r.object_key FROM images AS i
             LEFT JOIN renditions AS r ON r.image_id = i.id
            WHERE i.id = $1 AND i.tenant_id = $2 AND i.deleting_since IS NULL
            ORDER BY r.size""",
        image_id,
        tenant_id,
    )
    if not rows:
        return None
    return {r["size"]: r["object_key"] for r in rows if r["size"] is not None}


async def mark_deleting(conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID) -> str | None:
    """Mark the tenant's image as being deleted (again, if a delete was cut short) and
    commit; its original's key, or None for no such image.

    FOR UPDATE waits for workers recording results (they hold a key-share lock): those
    committed before the mark have stored their objects, which the delete then removes;
    those after it find the image gone and remove their own."""
    async with conn.transaction():
        key = await conn.fetchval(
            "SELECT object_key FROM images WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
            image_id,
            tenant_id,
        )
        if key is not None:
            await conn.execute(
                "UPDATE images SET deleting_since = coalesce(deleting_since, now()) WHERE id = $1",
                image_id,
            )
    return key


async def delete_marked(conn: asyncpg.Connection, image_id: UUID) -> None:
    """The last step of a delete, once the objects are gone."""
    # stages, renditions, outbox rows, embeddings, pairs, dead letters: ON DELETE CASCADE
    await conn.execute("DELETE FROM images WHERE id = $1 AND deleting_since IS NOT NULL", image_id)


async def unfinished_deletions(
    conn: asyncpg.Connection, older_than_s: float, limit: int
) -> list[asyncpg.Record]:
    """``id`` and ``object_key`` of images whose delete was cut short (or is slow)."""
    return await conn.fetch(
        """SELECT id, object_key FROM images
            WHERE deleting_since < now() - make_interval(secs => $1)
            ORDER BY deleting_since LIMIT $2""",
        older_than_s,
        limit,
    )


class StageRunning(Exception):
    def __init__(self, stages: list[str]) -> None:
        super().__init__(", ".join(stages))
        self.stages = stages


async def reset_stages(
    conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID, wanted: list[Stage]
) -> list[int] | None:
    """Reset the stages and enqueue their jobs; the outbox ids, or None for no such image.

    Raises StageRunning (and changes nothing) when a worker holds one of them.
    """
    async with conn.transaction():
        # Key-share: a delete waits for this (or this sees it done); workers writing the
        # image's facts do not.
        object_key = await conn.fetchval(
            """SELECT object_key FROM images
                WHERE id = $1 AND tenant_id = $2 AND deleting_since IS NULL FOR KEY SHARE""",
            image_id,
            tenant_id,
        )
        if object_key is None:
            return None
        running = await resets.running_stages(conn, [image_id], wanted)
        if running:
            raise StageRunning(running[image_id])
        return await resets.reset_images(
            conn, [(image_id, object_key)], wanted, current_context_carrier()
        )


async def restore(conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID) -> bool | None:
    """Out of the trash: True if it was trashed, False if not, None for no such image."""
    row = await conn.fetchrow(
        """UPDATE images AS i SET trashed_at = NULL
             FROM images AS old
            WHERE i.id = $1 AND i.tenant_id = $2 AND old.id = i.id AND i.deleting_since IS NULL
           RETURNING old.trashed_at IS NOT NULL AS was_trashed""",
        image_id,
        tenant_id,
    )
    return None if row is None else bool(row["was_trashed"])


async def trash_due(
    conn: asyncpg.Connection, retention_days: float, limit: int
) -> list[asyncpg.Record]:
    """Trashed images older than the retention, oldest first: (tenant_id, id)."""
    return await conn.fetch(
        """SELECT tenant_id, id FROM images
            WHERE trashed_at < now() - make_interval(secs => $1 * 86400)
            ORDER BY trashed_at LIMIT $2""",
        retention_days,
        limit,
    )
