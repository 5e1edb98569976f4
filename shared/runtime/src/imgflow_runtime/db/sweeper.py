"""Re-drive stages that no worker finished in time, from PostgreSQL's record of them.

PostgreSQL is the source of truth for what is owed: a job can vanish from the broker
(a worker's host dies with the message unacked, Redis loses data), but its stage row
stays pending or running. Past a deadline the sweeper enqueues it again through the
outbox; after ``max_sweeps`` it gives up and dead-letters it, so nothing waits silently.
Re-enqueueing a job that was only slow costs a skipped duplicate (stages are idempotent).

A pending job behind a backlog is not lost: its message is in the broker, queued after
the oldest one there (``QueueHead``). Judged by its age alone, a long import (hours of
work queued at once) would be swept again and again and its healthy jobs dead-lettered
as lost; so a pending stage is only judged once its queue has moved past it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import AFTER, Stage
from imgflow_runtime.db import dead_letters, outbox

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every API replica.
_SWEEP_LOCK_ID = 0x1F_6F_77_01


@dataclass(frozen=True)
class SweepPolicy:
    pending_after_s: float
    running_after_s: float
    max_sweeps: int
    batch: int = 500


@dataclass(frozen=True)
class QueueHead:
    """The oldest job still waiting in a stage's broker queue, for a queue that is not
    empty; ``image_id`` None when that message could not be read as a job."""

    stage: Stage
    image_id: UUID | None


@dataclass(frozen=True)
class SweepResult:
    requeued: int
    given_up: int


async def sweep(
    conn: asyncpg.Connection, policy: SweepPolicy, heads: Sequence[QueueHead] = ()
) -> SweepResult:
    """One pass; a no-op when another replica holds the sweep lock.

    ``heads``: the non-empty queues' oldest jobs (several per queue: the oldest of them
    counts). A pending stage queued no earlier than its queue's head is still waiting in
    line (with an unreadable head, every pending stage of that queue is); one queued
    before it was passed over: lost. Without heads
    (an empty queue, or the broker unreadable) the deadline alone decides, as before."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _SWEEP_LOCK_ID):
            return SweepResult(0, 0)
        stuck = await conn.fetch(
            """SELECT s.image_id, s.stage, s.status, s.sweeps, s.attempts, i.object_key
                 FROM image_stages AS s JOIN images AS i ON i.id = s.image_id
                WHERE ((s.status = 'pending'
                        AND s.queued_at < now() - make_interval(secs => $1))
                    -- counted from the last re-enqueue too, so one sweep per deadline
                    OR (s.status = 'running'
                        AND greatest(s.started_at, s.queued_at)
                            < now() - make_interval(secs => $2)))
                  -- a job still waiting in the outbox is not lost, only undelivered
                  AND NOT EXISTS (SELECT 1 FROM outbox AS o
                                   WHERE o.image_id = s.image_id
                                     AND o.payload ->> 'stage' = s.stage)
                  -- nor is one waiting for the stage it reads (queues.AFTER) to finish
                  AND NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[])
                                             AS after(stage, predecessor)
                                    JOIN image_stages AS p
                                      ON p.image_id = s.image_id
                                     AND p.stage = after.predecessor
                                   WHERE after.stage = s.stage
                                     AND s.status = 'pending'
                                     AND p.status IN ('pending', 'running'))
                  -- nor is one still in line in its queue (see QueueHead)
                  AND NOT EXISTS (SELECT 1 FROM unnest($6::text[], $7::uuid[])
                                             AS q(stage, head_image)
                                    LEFT JOIN image_stages AS h
                                      ON h.image_id = q.head_image AND h.stage = q.stage
                                   WHERE q.stage = s.stage
                                     AND s.status = 'pending'
                                     AND (h.queued_at IS NULL OR s.queued_at >= h.queued_at))
                ORDER BY s.queued_at
                LIMIT $3
                FOR UPDATE OF s SKIP LOCKED""",
            policy.pending_after_s,
            policy.running_after_s,
            policy.batch,
            [stage.value for stage in AFTER],
            [predecessor.value for predecessor in AFTER.values()],
            [head.stage.value for head in heads],
            [head.image_id for head in heads],
        )
        requeue: list[ImageJob] = []
        given_up = 0
        for row in stuck:
            job = ImageJob(
                image_id=row["image_id"], stage=Stage(row["stage"]), object_key=row["object_key"]
            )
            if row["sweeps"] >= policy.max_sweeps:
                reason = (
                    f"lost: still {row['status']} after being re-enqueued {row['sweeps']} times"
                )
                await dead_letters.record_failure(conn, job, reason, row["attempts"])
                given_up += 1
            else:
                requeue.append(job)
        if requeue:
            await conn.execute(
                """UPDATE image_stages AS s
                      SET sweeps = s.sweeps + 1, queued_at = now()
                     FROM unnest($1::uuid[], $2::text[]) AS t(image_id, stage)
                    WHERE s.image_id = t.image_id AND s.stage = t.stage""",
                [j.image_id for j in requeue],
                [j.stage.value for j in requeue],
            )
            await outbox.enqueue(conn, requeue)
    if requeue or given_up:
        log.warning("sweeper re-enqueued %d stuck stage(s), gave up on %d", len(requeue), given_up)
    return SweepResult(len(requeue), given_up)
