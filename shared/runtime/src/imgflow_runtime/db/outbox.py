"""Enqueue jobs through the outbox: a row per job, written in the caller's transaction.

The API's relay sends outbox rows to the broker and deletes them, so whoever enqueues
here (an upload, a replay, the sweeper) gets the same delivery guarantee.
"""

from __future__ import annotations

import asyncpg

from imgflow_contracts.payloads import ImageJob


async def enqueue(
    conn: asyncpg.Connection, jobs: list[ImageJob], trace_context: dict[str, str] | None = None
) -> list[int]:
    """Insert one outbox row per job; returns their ids (for an immediate relay)."""
    rows = await conn.fetch(
        """INSERT INTO outbox (image_id, task_name, queue, payload, trace_context)
           SELECT t.image_id, t.task_name, t.queue, t.payload, $5
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[])
                  AS t(image_id, task_name, queue, payload)
           RETURNING id""",
        [job.image_id for job in jobs],
        [job.stage.task_name for job in jobs],
        [job.stage.queue for job in jobs],
        [job.to_message() for job in jobs],
        trace_context or {},
    )
    return [r["id"] for r in rows]
