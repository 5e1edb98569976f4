"""Enqueue jobs through the outbox: a row per job, written in the caller's transaction.

The API's relay sends outbox rows to the broker and deletes them, so whoever enqueues
here (an upload, a replay, the sweeper) gets the same delivery guarantee. The relay picks
what to send next by kind (``UPLOAD`` before ``BULK``) and by tenant in weighted turns
(migration 0015 fills each row's tenant from its image).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from imgflow_contracts.payloads import ImageJob

# Kinds of work, in the order the relay serves them.
UPLOAD = "upload"  # new uploads, replays, the sweeper's re-drives: someone is waiting
BULK = "bulk"  # reprocess runs and imports flagged bulk: throughput, not latency
KINDS = (UPLOAD, BULK)
# The message header that carries a job's kind to the worker, which gives it to the
# stages it hands on (a Celery message header is read back as ``task.request.<name>``).
KIND_HEADER = "imgflow_kind"
# The header the relay sets on a job it sent by the express lane (its tenant had little
# waiting); the worker hands the stages that follow on by the express lane too.
LANE_HEADER = "imgflow_lane"
EXPRESS = "express"


async def enqueue(
    conn: asyncpg.Connection,
    jobs: list[ImageJob],
    trace_context: dict[str, str] | None = None,
    kind: str = UPLOAD,
) -> list[int]:
    """Insert one outbox row per job; returns their ids (for an immediate relay)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of work {kind!r}")
    rows = await conn.fetch(
        """INSERT INTO outbox (image_id, task_name, queue, payload, trace_context, kind)
           SELECT t.image_id, t.task_name, t.queue, t.payload, $5, $6
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[])
                  AS t(image_id, task_name, queue, payload)
           RETURNING id""",
        [job.image_id for job in jobs],
        [job.stage.task_name for job in jobs],
        [job.stage.queue for job in jobs],
        [job.to_message() for job in jobs],
        trace_context or {},
        kind,
    )
    return [r["id"] for r in rows]


async def tenant_is_light(
    conn: asyncpg.Connection, image_id: UUID, queues: list[str], max_waiting: int
) -> bool:
    """Whether the image's tenant is light: at most ``max_waiting`` new-upload jobs
    waiting here for any one of ``queues`` (the relay's rule, jobs.repository
    .lock_light_lanes). A worker asks before it hands an express job's next stage on by
    the express lane: a tenant light when its first uploads went express may have a
    backlog by now (a flood starts with none). Each count stops at ``max_waiting + 1``
    on the relay's index, so a large backlog costs no more than a small one."""
    if max_waiting <= 0:
        return False
    return bool(
        await conn.fetchval(
            """SELECT NOT EXISTS (
                   SELECT 1 FROM images AS i CROSS JOIN unnest($2::text[]) AS q (queue)
                    WHERE i.id = $1
                      AND (SELECT count(*) FROM (
                               SELECT 1 FROM outbox AS o
                                WHERE o.queue = q.queue AND o.kind = $4
                                  AND o.tenant_id = i.tenant_id
                                LIMIT $3 + 1) AS waiting) > $3)""",
            image_id,
            queues,
            max_waiting,
            UPLOAD,
        )
    )
