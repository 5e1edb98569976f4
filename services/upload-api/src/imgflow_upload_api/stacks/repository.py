"""The similar stacks' queries: a page of the tenant's stacks, one with its members and
the pairs between them, the stack an image is in, and the resolve's writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_upload_api.image_set_pages import ImageSets, set_page

# Largest stack returned; a bigger one is cut.
MAX_STACK = 1000

# How much metadata an image has: the pick's third criterion.
_METADATA = """((i.captured_at IS NOT NULL)::int + (i.camera_make IS NOT NULL)::int
                + (i.camera_model IS NOT NULL)::int + (i.orientation IS NOT NULL)::int
                + (i.gps_latitude IS NOT NULL)::int)"""
_STACK_COLUMNS = "s.id, s.version, s.created_at, s.updated_at, s.resolved_at, s.kept"


# What the listing and the detail share with the groups' (image_set_pages.py): a stack
# is shown with two or more visible members (an image being deleted is hidden
# everywhere; trashed ones have left their stack already, migration 0020's trigger); the
# page lists each shown member's pick facts (frames), as the detail reads them.
_STACKS = ImageSets(
    table="similar_stacks",
    alias="s",
    columns=_STACK_COLUMNS,
    member_table="similar_stack_members",
    member_key="stack_id",
    facts=f"i.id, i.sharpness, i.width, i.height, {_METADATA} AS metadata, i.created_at",
    facts_as="frames",
)


async def stack_page(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    after: tuple[datetime, UUID] | None,
    limit: int,
    resolved: bool | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` of the tenant's stacks, latest change first, after the position,
    each with its shown members' pick facts (``frames``), as the detail reads them;
    ``resolved``: only those resolved (True) or not (False) at their current version."""
    # Constant SQL, only when asked for: each filter its own statement, as the keyset
    # (set_page says why).
    only: tuple[str, ...] = ()
    if resolved is not None:
        only = ("s.resolved_at IS NOT NULL" if resolved else "s.resolved_at IS NULL",)
    return await set_page(conn, _STACKS, tenant_id, after, limit, MAX_STACK, only)


async def fetch_stack_detail(
    conn: asyncpg.Connection, tenant_id: UUID, stack_id: UUID
) -> dict[str, Any] | None:
    """A stack with its members' facts and renditions, and the pairs between them."""
    stack = await conn.fetchrow(
        f"""SELECT {_STACK_COLUMNS} FROM similar_stacks AS s
             WHERE s.id = $1 AND s.tenant_id = $2 AND {_STACKS.shown}""",
        stack_id,
        tenant_id,
    )
    if stack is None:
        return None
    members = await conn.fetch(
        f"""SELECT i.id, i.created_at, i.content_type, i.byte_size, i.format, i.width,
                  i.height, i.captured_at, i.sharpness, {_METADATA} AS metadata,
                  g.group_id AS duplicate_group_id,
                  coalesce((SELECT jsonb_agg(r.size ORDER BY r.size) FROM renditions AS r
                             WHERE r.image_id = i.id), '[]') AS rendition_sizes
             FROM similar_stack_members AS m JOIN images AS i ON i.id = m.image_id
             LEFT JOIN duplicate_group_members AS g ON g.image_id = i.id
            WHERE m.stack_id = $1 AND i.deleting_since IS NULL
            ORDER BY i.created_at, i.id
            LIMIT $2""",
        stack_id,
        MAX_STACK,
    )
    ids = [m["id"] for m in members]
    pairs = await conn.fetch(
        """SELECT image_a, image_b, 'duplicate' AS relation, basis, method, score, cosine,
                  view_cosine, phash_distance, inliers, iou, agreement, motion,
                  second_motion, found_at
             FROM duplicate_pairs
            WHERE image_a = ANY($1::uuid[]) AND image_b = ANY($1::uuid[])
           UNION ALL
           SELECT image_a, image_b, 'similar', basis, NULL, NULL, cosine, view_cosine,
                  phash_distance, inliers, iou, agreement, motion, second_motion, found_at
             FROM similar_pairs
            WHERE image_a = ANY($1::uuid[]) AND image_b = ANY($1::uuid[])
            ORDER BY relation, image_a, image_b""",
        ids,
    )
    return {**dict(stack), "members": [dict(m) for m in members], "pairs": [dict(p) for p in pairs]}


async def stack_of(conn: asyncpg.Connection, image_id: UUID) -> UUID | None:
    """The stored stack holding ``image_id``, if any."""
    return await conn.fetchval(
        "SELECT stack_id FROM similar_stack_members WHERE image_id = $1", image_id
    )


async def lock_stack(
    conn: asyncpg.Connection, tenant_id: UUID, stack_id: UUID
) -> tuple[int, dict[UUID, UUID]] | None:
    """The tenant's stack, locked: its version, and each member's unit (its duplicate
    group's id, or itself when ungrouped)."""
    version = await conn.fetchval(
        "SELECT version FROM similar_stacks WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
        stack_id,
        tenant_id,
    )
    if version is None:
        return None
    rows = await conn.fetch(
        """SELECT m.image_id, coalesce(g.group_id, m.image_id) AS unit
             FROM similar_stack_members AS m
             LEFT JOIN duplicate_group_members AS g ON g.image_id = m.image_id
            WHERE m.stack_id = $1""",
        stack_id,
    )
    return version, {r["image_id"]: r["unit"] for r in rows}


async def trash_images(conn: asyncpg.Connection, image_ids: list[UUID]) -> None:
    """Into the trash: out of their stack (migration 0020's trigger) and of their
    duplicate group at once; a group left behind gets a new version and is regrouped."""
    await conn.execute(
        """UPDATE duplicate_groups SET version = version + 1, dirty = true,
                                      updated_at = clock_timestamp()
            WHERE id IN (SELECT group_id FROM duplicate_group_members
                          WHERE image_id = ANY($1::uuid[]))""",
        image_ids,
    )
    await conn.execute(
        "UPDATE images SET trashed_at = now() WHERE id = ANY($1::uuid[]) AND trashed_at IS NULL",
        image_ids,
    )
    await conn.execute(
        "DELETE FROM duplicate_group_members WHERE image_id = ANY($1::uuid[])", image_ids
    )


async def dismiss(conn: asyncpg.Connection, tenant_id: UUID, units: dict[UUID, UUID]) -> None:
    """Every two of these images from different units: not one scene."""
    await conn.execute(
        """INSERT INTO similar_dismissals (image_a, image_b, tenant_id)
           SELECT a.image, b.image, $3
             FROM unnest($1::uuid[], $2::uuid[]) AS a (image, unit),
                  unnest($1::uuid[], $2::uuid[]) AS b (image, unit)
            WHERE a.image < b.image AND a.unit <> b.unit
           ON CONFLICT DO NOTHING""",
        list(units),
        list(units.values()),
        tenant_id,
    )


async def delete_stack(conn: asyncpg.Connection, stack_id: UUID) -> None:
    await conn.execute("DELETE FROM similar_stacks WHERE id = $1", stack_id)


async def mark_resolved(conn: asyncpg.Connection, stack_id: UUID, kept: UUID | None) -> int | None:
    """Resolved: a new version (announced as ``similar_stack.resolved``), so a later
    decision names the version that saw this one; None when the stack is gone."""
    return await conn.fetchval(
        """UPDATE similar_stacks SET resolved_at = clock_timestamp(), kept = $2,
                                    version = version + 1, updated_at = clock_timestamp()
            WHERE id = $1 RETURNING version""",
        stack_id,
        kept,
    )


async def stored_resolution(
    conn: asyncpg.Connection, tenant_id: UUID, stack_id: UUID, version: int
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    row = await conn.fetchrow(
        """SELECT request, answer FROM similar_stack_resolutions
            WHERE stack_id = $1 AND version = $2 AND tenant_id = $3""",
        stack_id,
        version,
        tenant_id,
    )
    return None if row is None else (row["request"], row["answer"])


async def save_resolution(
    conn: asyncpg.Connection,
    tenant_id: UUID,
    stack_id: UUID,
    version: int,
    request: dict[str, Any],
    answer: dict[str, Any],
) -> None:
    await conn.execute(
        """INSERT INTO similar_stack_resolutions (stack_id, version, tenant_id, request, answer)
           VALUES ($1, $2, $3, $4, $5)""",
        stack_id,
        version,
        tenant_id,
        request,
        answer,
    )


PRUNE_BATCH = 1000


async def prune_resolutions(conn: asyncpg.Connection, retention_days: float) -> int:
    """Delete one batch of stored resolve answers older than the retention; how many."""
    status = await conn.execute(
        """DELETE FROM similar_stack_resolutions WHERE (stack_id, version) IN (
               SELECT stack_id, version FROM similar_stack_resolutions
                WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)""",
        retention_days * 86_400,
        PRUNE_BATCH,
    )
    return int(status.split()[-1])
