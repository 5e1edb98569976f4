"""The duplicates' queries: an image's pairs, its group, and whether it was checked.

Pairs are stored once each (image_a < image_b) with the signal that decided them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

# Largest group returned; a bigger one is cut (and says so).
MAX_GROUP = 1000


async def checked_at(
    conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID
) -> tuple[bool, datetime | None]:
    """Whether the tenant has this image, and when the deduper last checked it."""
    row = await conn.fetchrow(
        """SELECT d.checked_at FROM images AS i
             LEFT JOIN duplicate_checks AS d ON d.image_id = i.id
            WHERE i.id = $1 AND i.tenant_id = $2""",
        image_id,
        tenant_id,
    )
    return (False, None) if row is None else (True, row["checked_at"])


async def fetch_duplicates(conn: asyncpg.Connection, image_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT CASE WHEN p.image_a = $1 THEN p.image_b ELSE p.image_a END AS id,
                  p.method, p.score, p.cosine, p.view_cosine, p.phash_distance, p.found_at
             FROM duplicate_pairs AS p
            WHERE p.image_a = $1 OR p.image_b = $1
            ORDER BY p.score DESC, id""",
        image_id,
    )
    return [dict(r) for r in rows]


async def fetch_group(conn: asyncpg.Connection, image_id: UUID) -> list[UUID]:
    """The connected component of ``image_id`` in the duplicate graph, itself included."""
    rows = await conn.fetch(
        """WITH RECURSIVE grp(id) AS (
               SELECT $1::uuid
               UNION
               SELECT CASE WHEN p.image_a = g.id THEN p.image_b ELSE p.image_a END
                 FROM grp AS g JOIN duplicate_pairs AS p
                   ON p.image_a = g.id OR p.image_b = g.id
           )
           SELECT id FROM grp LIMIT $2""",
        image_id,
        MAX_GROUP + 1,
    )
    return sorted(r["id"] for r in rows)
