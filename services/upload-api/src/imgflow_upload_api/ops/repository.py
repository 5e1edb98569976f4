"""What is owed, read from PostgreSQL for /metrics: nothing waits without being seen."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Backlog:
    outbox: int
    dead_letters_open: int
    oldest_waiting_s: dict[str, float]


async def read_backlog(conn: asyncpg.Connection) -> Backlog:
    oldest = await conn.fetch(
        """SELECT stage, extract(epoch FROM now() - min(queued_at))::float8 AS age
             FROM image_stages WHERE status IN ('pending', 'running') GROUP BY stage"""
    )
    counts = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM outbox) AS outbox,
                  (SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL) AS dead"""
    )
    return Backlog(counts["outbox"], counts["dead"], {r["stage"]: r["age"] for r in oldest})
