"""The dead-letter store: jobs given up on, kept for an operator to inspect and replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_runtime.db import outbox
from imgflow_runtime.db.stages import MAX_ERROR_LENGTH


@dataclass(frozen=True)
class DeadLetter:
    id: int
    image_id: UUID | None
    stage: str | None
    task_name: str
    queue: str
    payload: Any
    reason: str
    attempts: int
    failed_at: datetime
    resolved_at: datetime | None
    resolution: str | None


async def record_failure(
    conn: asyncpg.Connection, job: ImageJob, reason: str, attempts: int
) -> None:
    """Fail the stage and keep the job, in one transaction (both or neither)."""
    reason = reason[:MAX_ERROR_LENGTH]
    async with conn.transaction():
        updated = await conn.execute(
            """UPDATE image_stages SET status = 'failed', error = $3, finished_at = now()
                WHERE image_id = $1 AND stage = $2""",
            job.image_id,
            job.stage.value,
            reason,
        )
        if updated == "UPDATE 0":  # the image was deleted meanwhile: nothing to keep
            return
        await conn.execute(
            """INSERT INTO dead_letters (image_id, stage, task_name, queue, payload, reason,
                                         attempts)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (image_id, stage) WHERE resolved_at IS NULL AND image_id IS NOT NULL
               DO UPDATE SET reason = EXCLUDED.reason, attempts = EXCLUDED.attempts,
                             failed_at = now()""",
            job.image_id,
            job.stage.value,
            job.stage.task_name,
            job.stage.queue,
            job.to_message(),
            reason,
            attempts,
        )


async def record_poison(conn: asyncpg.Connection, stage: Stage, payload: Any, reason: str) -> None:
    """Keep a message that could never be processed (it does not parse)."""
    await conn.execute(
        """INSERT INTO dead_letters (stage, task_name, queue, payload, reason)
           VALUES ($1, $2, $3, $4, $5)""",
        stage.value,
        stage.task_name,
        stage.queue,
        payload,
        reason[:MAX_ERROR_LENGTH],
    )


async def list_dead_letters(
    conn: asyncpg.Connection, *, include_resolved: bool = False, limit: int = 100
) -> list[DeadLetter]:
    rows = await conn.fetch(
        f"""SELECT id, image_id, stage, task_name, queue, payload, reason, attempts,
                   failed_at, resolved_at, resolution
              FROM dead_letters
             {"" if include_resolved else "WHERE resolved_at IS NULL"}
             ORDER BY id
             LIMIT $1""",
        limit,
    )
    return [DeadLetter(**dict(r)) for r in rows]


class NotReplayable(Exception):
    """The dead letter is unknown, already replayed, or names no image to process."""


async def replay(conn: asyncpg.Connection, dead_letter_id: int) -> list[int]:
    """Reset the stage to pending and enqueue the job again; returns the outbox ids."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """SELECT image_id, stage, payload, resolved_at FROM dead_letters
                WHERE id = $1 FOR UPDATE""",
            dead_letter_id,
        )
        if row is None:
            raise NotReplayable(f"no dead letter has the id {dead_letter_id}")
        if row["resolved_at"] is not None:
            raise NotReplayable(f"dead letter {dead_letter_id} is resolved already")
        if row["image_id"] is None:
            raise NotReplayable(
                f"dead letter {dead_letter_id} is a message that never parsed; it names no "
                "image to process again"
            )
        job = ImageJob.model_validate(row["payload"])
        await conn.execute(
            """UPDATE image_stages
                  SET status = 'pending', error = NULL, finished_at = NULL, queued_at = now()
                WHERE image_id = $1 AND stage = $2""",
            job.image_id,
            job.stage.value,
        )
        await conn.execute(
            """UPDATE dead_letters SET resolved_at = now(), resolution = 'replayed'
                WHERE id = $1""",
            dead_letter_id,
        )
        return await outbox.enqueue(conn, [job])
