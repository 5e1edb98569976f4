"""The duplicates' queries: an image's pairs, its stored group, whether it was checked;
the tenant's stored groups, a page at a time, and one with its members and pairs.

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


async def stored_group(conn: asyncpg.Connection, image_id: UUID) -> tuple[UUID | None, list[UUID]]:
    """The stored group holding ``image_id``: its id and members (None, [] if none)."""
    rows = await conn.fetch(
        """SELECT m.group_id, m.image_id FROM duplicate_group_members AS mine
             JOIN duplicate_group_members AS m ON m.group_id = mine.group_id
            WHERE mine.image_id = $1
            ORDER BY m.image_id LIMIT $2""",
        image_id,
        MAX_GROUP + 1,
    )
    return (rows[0]["group_id"] if rows else None), [r["image_id"] for r in rows]


# Groups a deletion left with one member wait for the deduper to retire them: not shown.
_SHOWN = "(SELECT count(*) FROM duplicate_group_members AS c WHERE c.group_id = g.id) >= 2"


async def group_page(
    conn: asyncpg.Connection, tenant_id: UUID, after: tuple[datetime, UUID] | None, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` of the tenant's groups, latest change first, after the position."""
    rows = await conn.fetch(
        f"""SELECT g.id, g.version, g.created_at, g.updated_at,
                   (SELECT count(*) FROM duplicate_group_members AS c
                     WHERE c.group_id = g.id) AS size
              FROM duplicate_groups AS g
             WHERE g.tenant_id = $1 AND {_SHOWN}
               AND ($2::timestamptz IS NULL OR (g.updated_at, g.id) < ($2, $3::uuid))
             ORDER BY g.updated_at DESC, g.id DESC
             LIMIT $4""",
        tenant_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [dict(r) for r in rows]


async def fetch_group_detail(
    conn: asyncpg.Connection, tenant_id: UUID, group_id: UUID
) -> dict[str, Any] | None:
    """A group with its members' facts and renditions, and the pairs between them."""
    group = await conn.fetchrow(
        f"""SELECT g.id, g.version, g.created_at, g.updated_at FROM duplicate_groups AS g
             WHERE g.id = $1 AND g.tenant_id = $2 AND {_SHOWN}""",
        group_id,
        tenant_id,
    )
    if group is None:
        return None
    members = await conn.fetch(
        """SELECT i.id, i.created_at, i.content_type, i.byte_size, i.format, i.width,
                  i.height, i.captured_at,
                  (i.captured_at IS NOT NULL OR i.camera_make IS NOT NULL
                   OR i.camera_model IS NOT NULL OR i.orientation IS NOT NULL) AS has_exif,
                  coalesce((SELECT jsonb_agg(r.size ORDER BY r.size) FROM renditions AS r
                             WHERE r.image_id = i.id), '[]') AS rendition_sizes
             FROM duplicate_group_members AS m JOIN images AS i ON i.id = m.image_id
            WHERE m.group_id = $1
            ORDER BY i.created_at, i.id
            LIMIT $2""",
        group_id,
        MAX_GROUP,
    )
    ids = [m["id"] for m in members]
    pairs = await conn.fetch(
        """SELECT image_a, image_b, method, score, cosine, view_cosine, phash_distance, found_at
             FROM duplicate_pairs
            WHERE image_a = ANY($1::uuid[]) AND image_b = ANY($1::uuid[])
            ORDER BY score DESC, image_a, image_b""",
        ids,
    )
    return {
        **dict(group),
        "members": [dict(m) for m in members],
        "pairs": [dict(p) for p in pairs],
    }
