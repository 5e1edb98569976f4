"""The deduper's record of a check. Exact byte duplicates only, until the CNN stage lands."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def record_exact_check(conn: asyncpg.Connection, image_id: UUID) -> UUID | None:
    """Record that ``image_id`` was checked; returns the earliest image with equal bytes."""
    return await conn.fetchval(
        """
        WITH twin AS (
            SELECT other.id
              FROM images AS me
              JOIN images AS other
                ON other.sha256 = me.sha256 AND other.id <> me.id
               AND (other.created_at, other.id) < (me.created_at, me.id)
             WHERE me.id = $1
             ORDER BY other.created_at, other.id
             LIMIT 1
        )
        INSERT INTO duplicate_checks (image_id, method, exact_duplicate_of, checked_at)
        VALUES ($1, 'sha256', (SELECT id FROM twin), now())
        ON CONFLICT (image_id) DO UPDATE
           SET method = EXCLUDED.method, exact_duplicate_of = EXCLUDED.exact_duplicate_of,
               checked_at = EXCLUDED.checked_at
        RETURNING exact_duplicate_of
        """,
        image_id,
    )
