"""Forget old events and finished webhook deliveries, a bounded batch at a time."""

from __future__ import annotations

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
