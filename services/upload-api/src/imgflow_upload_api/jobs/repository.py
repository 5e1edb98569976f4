"""The outbox rows the relay sends (they are written by imgflow_runtime.db.outbox, in the
transaction of whoever enqueues)."""

from __future__ import annotations

import asyncpg


async def lock_batch(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` rows, oldest first, locked; rows another replica holds are skipped."""
    return await conn.fetch(
        """SELECT id, task_name, queue, payload, trace_context FROM outbox
            ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )


async def delete_sent(conn: asyncpg.Connection, ids: list[int]) -> None:
    await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)


async def record_failure(conn: asyncpg.Connection, ids: list[int], error: str) -> None:
    await conn.execute(
        """UPDATE outbox SET attempts = attempts + 1, last_error = $2
            WHERE id = ANY($1::bigint[])""",
        ids,
        error,
    )


async def count_pending(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM outbox"))
