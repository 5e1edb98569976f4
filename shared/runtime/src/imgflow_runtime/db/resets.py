"""Run stages of images again: the one reset that single reprocess (the API) and bulk
reprocess runs (the API's driver) share, so both enqueue exactly alike."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage, first_stages
from imgflow_runtime.db import outbox


async def running_stages(
    conn: asyncpg.Connection, image_ids: Sequence[UUID], stages: Sequence[Stage]
) -> dict[UUID, list[str]]:
    """Lock the images' rows of ``stages`` (in the caller's transaction) and say which a
    worker is running: a worker claiming one waits for the reset to commit, then finds it
    pending, so nothing is reset under a running worker."""
    rows = await conn.fetch(
        """SELECT image_id, stage, status FROM image_stages
            WHERE image_id = ANY($1::uuid[]) AND stage = ANY($2::text[])
            ORDER BY image_id, stage FOR UPDATE""",
        list(image_ids),
        [s.value for s in stages],
    )
    running: dict[UUID, list[str]] = {}
    for r in rows:
        if r["status"] == "running":
            running.setdefault(r["image_id"], []).append(r["stage"])
    return running


async def reset_images(
    conn: asyncpg.Connection,
    images: Sequence[tuple[UUID, str]],
    stages: Sequence[Stage],
    trace_context: dict[str, str] | None = None,
    kind: str = outbox.UPLOAD,
) -> list[int]:
    """Make ``stages`` of each (image id, object key) pending again and enqueue their jobs
    through the outbox, in the caller's transaction; returns the outbox ids. The caller
    holds the images (FOR KEY SHARE) and has checked that no stage is running."""
    if not images:
        return []
    ids = [image_id for image_id, _ in images]
    names = [s.value for s in stages]
    # An upsert, so a stage an image never had (added after it was uploaded) runs too.
    await conn.execute(
        """INSERT INTO image_stages (image_id, stage)
           SELECT i, s FROM unnest($1::uuid[]) AS i CROSS JOIN unnest($2::text[]) AS s
           ON CONFLICT (image_id, stage) DO UPDATE
              SET status = 'pending', attempts = 0, error = NULL, sweeps = 0,
                  queued_at = now(), started_at = NULL, finished_at = NULL""",
        ids,
        names,
    )
    # The stages run again, so their open dead letters are dealt with, as by a replay.
    await conn.execute(
        """UPDATE dead_letters SET resolved_at = now(), resolution = 'replayed'
            WHERE image_id = ANY($1::uuid[]) AND stage = ANY($2::text[])
              AND resolved_at IS NULL""",
        ids,
        names,
    )
    # A stage that reads another one being rerun waits for it (queues.AFTER).
    jobs = [
        ImageJob(image_id=image_id, stage=stage, object_key=object_key)
        for image_id, object_key in images
        for stage in first_stages(list(stages))
    ]
    return await outbox.enqueue(conn, jobs, trace_context, kind)
