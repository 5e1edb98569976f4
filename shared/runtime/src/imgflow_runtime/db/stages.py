"""Stage bookkeeping every worker shares: running, done, failed, with attempts and timings.

Updates are guarded by the image's existence, so a job whose image was deleted while it
waited becomes a no-op instead of an error.

Lock order: whatever writes several stage rows in one statement or transaction locks
them first ordered by (image id, stage), as ``LOCK_IN_ORDER`` below, the reset
(resets.running_stages) and the relay (jobs.repository.delete_sent) do. Two writers then
never wait on each other in a cycle: a worker's done, a reprocess and the relay's sent
used to deadlock, and PostgreSQL aborted one of them (tests/test_stage_lock_order.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

import asyncpg

from imgflow_contracts.queues import Stage, dependants

MAX_ERROR_LENGTH = 2000

# The rows of image $1 whose stages are in $2, locked in the one order; a statement reads
# it through an uncorrelated subquery (evaluated once, before its own updates lock rows).
LOCK_IN_ORDER = """locked AS (
               SELECT stage FROM image_stages
                WHERE image_id = $1 AND stage = ANY($2::text[])
                ORDER BY stage FOR UPDATE
           )"""


@dataclass(frozen=True)
class StageClaim:
    """What a worker learns when it claims a stage."""

    attempts: int
    queued_at: datetime
    started_at: datetime


class Skip(StrEnum):
    """Why a delivered job has nothing to do."""

    IMAGE_GONE = "image deleted"
    ALREADY_DONE = "stage already done"


async def mark_running(conn: asyncpg.Connection, image_id: UUID, stage: Stage) -> StageClaim | Skip:
    """Claim a stage for this attempt, or say why the job should be skipped."""
    row = await conn.fetchrow(
        """UPDATE image_stages
              SET status = 'running', attempts = attempts + 1, started_at = now(), error = NULL
            WHERE image_id = $1 AND stage = $2 AND status <> 'done'
        RETURNING attempts, queued_at, started_at""",
        image_id,
        stage.value,
    )
    if row is not None:
        return StageClaim(row["attempts"], row["queued_at"], row["started_at"])
    exists = await conn.fetchval(
        "SELECT true FROM image_stages WHERE image_id = $1 AND stage = $2", image_id, stage.value
    )
    return Skip.ALREADY_DONE if exists else Skip.IMAGE_GONE


async def mark_done(conn: asyncpg.Connection, image_id: UUID, stage: Stage) -> list[Stage] | None:
    """Record the stage done; a dead letter it left earlier is resolved by this success;
    and the stages waiting for it are released (as ``release_dependants``), all in one
    statement.

    Returns the released stages to enqueue, or None when the image was deleted meanwhile
    (nothing was recorded).
    """
    waiting = [s.value for s in dependants(stage)]
    row = await conn.fetchrow(
        f"""WITH {LOCK_IN_ORDER}, done AS (
               UPDATE image_stages SET status = 'done', error = NULL, finished_at = now()
                WHERE image_id = $1 AND stage = $3 AND (SELECT count(*) FROM locked) > 0
            RETURNING 1
           ), resolved AS (
               UPDATE dead_letters SET resolved_at = now(), resolution = 'completed'
                WHERE image_id = $1 AND stage = $3 AND resolved_at IS NULL
           ), released AS (
               UPDATE image_stages SET queued_at = now()
                WHERE image_id = $1 AND stage = ANY($4::text[]) AND status = 'pending'
                  AND EXISTS (SELECT 1 FROM done)
            RETURNING stage
           )
           SELECT (SELECT count(*) FROM done) AS done,
                  array(SELECT stage FROM released) AS released""",
        image_id,
        [stage.value, *waiting],
        stage.value,
        waiting,
    )
    if row is None or not row["done"]:
        return None
    return sorted((Stage(s) for s in row["released"]), key=list(Stage).index)


async def mark_failed(conn: asyncpg.Connection, image_id: UUID, stage: Stage, reason: str) -> bool:
    """Record the stage failed; False when the image was deleted meanwhile."""
    status = await conn.execute(
        """UPDATE image_stages SET status = 'failed', error = $3, finished_at = now()
            WHERE image_id = $1 AND stage = $2""",
        image_id,
        stage.value,
        reason[:MAX_ERROR_LENGTH],
    )
    return status != "UPDATE 0"


async def image_exists(conn: asyncpg.Connection, image_id: UUID) -> bool:
    """Whether the image exists and is not being deleted (migration 0010); waits for a
    delete's mark to commit or roll back."""
    return bool(
        await conn.fetchval(
            "SELECT deleting_since IS NULL FROM images WHERE id = $1 FOR KEY SHARE", image_id
        )
    )


async def release_dependants(conn: asyncpg.Connection, image_id: UUID, stage: Stage) -> list[Stage]:
    """The stages waiting for ``stage`` (still pending) that are now to be enqueued; their
    queue wait starts now, which is also what the sweeper's deadline counts from."""
    waiting = [s.value for s in dependants(stage)]
    if not waiting:
        return []
    rows = await conn.fetch(
        f"""WITH {LOCK_IN_ORDER}
           UPDATE image_stages SET queued_at = now()
            WHERE image_id = $1 AND stage = ANY($2::text[]) AND status = 'pending'
              AND (SELECT count(*) FROM locked) > 0
        RETURNING stage""",
        image_id,
        waiting,
    )
    return sorted((Stage(r["stage"]) for r in rows), key=list(Stage).index)
