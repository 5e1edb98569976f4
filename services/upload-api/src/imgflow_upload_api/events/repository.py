"""The events' queries: an image's state for its stream, stored events to replay, and
forgetting old events and finished webhook deliveries a bounded batch at a time."""

from __future__ import annotations

from uuid import UUID

import asyncpg

BATCH = 10_000


async def prune(
    conn: asyncpg.Connection, events_retention_s: float, deliveries_retention_s: float
) -> int:
    """Delete one batch of each; returns how many rows went (BATCH or more: call again)."""
    events = await conn.execute(
        """DELETE FROM image_events WHERE id IN (
               SELECT id FROM image_events WHERE at < now() - make_interval(secs => $1)
                ORDER BY at LIMIT $2)""",
        events_retention_s,
        BATCH,
    )
    deliveries = await conn.execute(
        """DELETE FROM webhook_deliveries WHERE id IN (
               SELECT id FROM webhook_deliveries
                WHERE finished_at < now() - make_interval(secs => $1)
                ORDER BY finished_at LIMIT $2)""",
        deliveries_retention_s,
        BATCH,
    )
    return max(int(events.split()[-1]), int(deliveries.split()[-1]))


async def stage_rows(
    conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID
) -> list[asyncpg.Record]:
    """The image's stages, each row with the image's latest event id; none if not found."""
    return await conn.fetch(
        """SELECT s.stage, s.status, s.error, s.attempts,
                  (SELECT coalesce(max(e.id), 0) FROM image_events AS e
                    WHERE e.image_id = i.id) AS last_event_id
             FROM images AS i JOIN image_stages AS s ON s.image_id = i.id
            WHERE i.id = $1 AND i.tenant_id = $2
            ORDER BY s.stage""",
        image_id,
        tenant_id,
    )


async def latest_event_id(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM image_events"))


async def events_after(
    conn: asyncpg.Connection, tenant_id: UUID, after: int, limit: int
) -> list[asyncpg.Record]:
    """Up to ``limit`` of the tenant's stored events after id ``after``, oldest first."""
    return await conn.fetch(
        """SELECT id, type, tenant_id, image_id, stage, status, error, at, group_id,
                  group_version AS version, webhook_id, stack_id
             FROM image_events WHERE tenant_id = $1 AND id > $2
            ORDER BY id LIMIT $3""",
        tenant_id,
        after,
        limit,
    )
