"""The duplicates' queries: an image's pairs, its stored group, whether it was checked;
the tenant's stored groups, a page at a time, and one with its members and pairs.

Pairs are stored once each (image_a < image_b) with the signal that decided them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_upload_api.image_set_pages import ImageSets, set_page

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
                  p.method, p.score, p.cosine, p.view_cosine, p.phash_distance, p.inliers,
                  p.iou, p.agreement, p.motion, p.second_motion, p.basis, p.found_at
             FROM duplicate_pairs AS p
             JOIN images AS o  -- the other image, unless trashed
               ON o.id = CASE WHEN p.image_a = $1 THEN p.image_b ELSE p.image_a END
              AND o.trashed_at IS NULL
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


# A member's facts that choose the keeper (keeper.Candidate), as the detail reads them.
_HAS_EXIF = """(i.captured_at IS NOT NULL OR i.camera_make IS NOT NULL
                OR i.camera_model IS NOT NULL OR i.orientation IS NOT NULL)"""


# What the listing and the detail share with the stacks' (image_set_pages.py): a group
# is shown with two or more visible members (an image being deleted, a delete cut short
# and finished later by the sweeper, is hidden everywhere; a group left smaller waits to
# be regrouped, so a shown group always has a keeper to suggest); the page lists each
# shown member's keeper facts (keeper.Candidate), as the detail reads them.
_GROUPS = ImageSets(
    table="duplicate_groups",
    alias="g",
    columns="g.id, g.version, g.created_at, g.updated_at",
    member_table="duplicate_group_members",
    member_key="group_id",
    facts=f"""i.id, i.width, i.height, i.format, i.byte_size, i.captured_at,
              {_HAS_EXIF} AS has_exif, i.created_at""",
    facts_as="candidates",
)


async def group_page(
    conn: asyncpg.Connection, tenant_id: UUID, after: tuple[datetime, UUID] | None, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` of the tenant's groups, latest change first, after the position,
    each with its shown members' keeper facts (``candidates``), the same members and
    order as ``fetch_group_detail`` so the list suggests the keeper the detail does."""
    return await set_page(conn, _GROUPS, tenant_id, after, limit, MAX_GROUP)


async def fetch_group_detail(
    conn: asyncpg.Connection, tenant_id: UUID, group_id: UUID
) -> dict[str, Any] | None:
    """A group with its members' facts and renditions, and the pairs between them."""
    group = await conn.fetchrow(
        f"""SELECT g.id, g.version, g.created_at, g.updated_at FROM duplicate_groups AS g
             WHERE g.id = $1 AND g.tenant_id = $2 AND {_GROUPS.shown}""",
        group_id,
        tenant_id,
    )
    if group is None:
        return None
    members = await conn.fetch(
        f"""SELECT i.id, i.created_at, i.content_type, i.byte_size, i.format, i.width,
                  i.height, i.captured_at, {_HAS_EXIF} AS has_exif,
                  coalesce((SELECT jsonb_agg(r.size ORDER BY r.size) FROM renditions AS r
                             WHERE r.image_id = i.id), '[]') AS rendition_sizes
             FROM duplicate_group_members AS m JOIN images AS i ON i.id = m.image_id
            WHERE m.group_id = $1 AND i.deleting_since IS NULL  -- hidden while deleted
            ORDER BY i.created_at, i.id
            LIMIT $2""",
        group_id,
        MAX_GROUP,
    )
    ids = [m["id"] for m in members]
    pairs = await conn.fetch(
        """SELECT image_a, image_b, method, score, cosine, view_cosine, phash_distance,
                  inliers, iou, agreement, motion, second_motion, basis, found_at
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


async def stored_resolution(
    conn: asyncpg.Connection, tenant_id: UUID, group_id: UUID, version: int
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    row = await conn.fetchrow(
        """SELECT request, answer FROM duplicate_resolutions
            WHERE group_id = $1 AND version = $2 AND tenant_id = $3""",
        group_id,
        version,
        tenant_id,
    )
    return None if row is None else (row["request"], row["answer"])


async def save_resolution(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    group_id: UUID,
    version: int,
    request: dict[str, Any],
    answer: dict[str, Any],
) -> None:
    await conn.execute(
        """INSERT INTO duplicate_resolutions (group_id, version, tenant_id, request, answer)
           VALUES ($1, $2, $3, $4, $5)""",
        group_id,
        version,
        tenant_id,
        request,
        answer,
    )


async def lock_group(
    conn: asyncpg.Connection, tenant_id: UUID, group_id: UUID
) -> tuple[int, set[UUID]] | None:
    """The tenant's group, locked: its version and members."""
    version = await conn.fetchval(
        "SELECT version FROM duplicate_groups WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
        group_id,
        tenant_id,
    )
    if version is None:
        return None
    rows = await conn.fetch(
        "SELECT image_id FROM duplicate_group_members WHERE group_id = $1", group_id
    )
    return version, {r["image_id"] for r in rows}


async def trash_images(conn: asyncpg.Connection, image_ids: list[UUID]) -> None:
    """Into the trash, and out of their group at once."""
    await conn.execute(
        "UPDATE images SET trashed_at = now() WHERE id = ANY($1::uuid[]) AND trashed_at IS NULL",
        image_ids,
    )
    await conn.execute(
        "DELETE FROM duplicate_group_members WHERE image_id = ANY($1::uuid[])", image_ids
    )


async def dismiss(conn: asyncpg.Connection, tenant_id: UUID, image_ids: list[UUID]) -> None:
    """Every two of these images: not duplicates."""
    await conn.execute(
        """INSERT INTO duplicate_dismissals (image_a, image_b, tenant_id)
           SELECT a, b, $2 FROM unnest($1::uuid[]) AS a, unnest($1::uuid[]) AS b WHERE a < b
           ON CONFLICT DO NOTHING""",
        image_ids,
        tenant_id,
    )


async def delete_group(conn: asyncpg.Connection, group_id: UUID) -> None:
    await conn.execute("DELETE FROM duplicate_groups WHERE id = $1", group_id)


async def group_changed(conn: asyncpg.Connection, group_id: UUID) -> int:
    """A new version, and flagged for regrouping (duplicates/tasks.py); the new version."""
    return int(
        await conn.fetchval(
            """UPDATE duplicate_groups
                  SET version = version + 1, dirty = true, updated_at = clock_timestamp()
                WHERE id = $1 RETURNING version""",
            group_id,
        )
    )


PRUNE_BATCH = 1000


async def prune_resolutions(conn: asyncpg.Connection, retention_days: float) -> int:
    """Delete one batch (PRUNE_BATCH) of resolve answers older than the retention; returns
    how many went. (Resolves are people's actions: few rows, so no index on created_at.)"""
    status = await conn.execute(
        """DELETE FROM duplicate_resolutions WHERE (group_id, version) IN (
               SELECT group_id, version FROM duplicate_resolutions
                WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)""",
        retention_days * 86_400,
        PRUNE_BATCH,
    )
    return int(status.split()[-1])
