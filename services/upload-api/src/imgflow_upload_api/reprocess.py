"""POST /v1/images/{id}/reprocess: run some or all stages of an image again.

The stages go back to pending (attempts, error and timings cleared) and their jobs go
through the outbox in the same transaction, exactly like an upload's, so an accepted
reprocess is never lost to a broker outage. A stage that a worker holds right now is
refused (409): resetting it under the worker would let two runs race on one result.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage, first_stages
from imgflow_runtime.db import outbox
from imgflow_runtime.telemetry import current_context_carrier
from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.lookup import PROBLEM_RESPONSE, image_not_found, parse_image_id, resources
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.views import StageStatus

router = APIRouter()


class ReprocessRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Empty or omitted: every stage.
    stages: list[Stage] = Field(default_factory=list, max_length=len(Stage))


class ReprocessAccepted(BaseModel):
    id: UUID
    stages: dict[Stage, StageStatus]


class StageRunning(Exception):
    def __init__(self, stages: list[str]) -> None:
        super().__init__(", ".join(stages))
        self.stages = stages


async def reset_stages(
    conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID, wanted: list[Stage]
) -> list[int] | None:
    """Reset the stages and enqueue their jobs; the outbox ids, or None for no such image.

    Raises StageRunning (and changes nothing) when a worker holds one of them.
    """
    async with conn.transaction():
        # Key-share: a delete waits for this (or this sees it done); workers writing the
        # image's facts do not.
        object_key = await conn.fetchval(
            "SELECT object_key FROM images WHERE id = $1 AND tenant_id = $2 FOR KEY SHARE",
            image_id,
            tenant_id,
        )
        if object_key is None:
            return None
        names = [stage.value for stage in wanted]
        running = await conn.fetch(
            """SELECT stage FROM image_stages
                WHERE image_id = $1 AND stage = ANY($2::text[]) AND status = 'running'
                ORDER BY stage FOR UPDATE""",
            image_id,
            names,
        )
        if running:
            raise StageRunning([r["stage"] for r in running])
        # An upsert, so a stage this image never had (added after it was uploaded) runs too.
        await conn.execute(
            """INSERT INTO image_stages (image_id, stage)
               SELECT $1, unnest($2::text[])
               ON CONFLICT (image_id, stage) DO UPDATE
                  SET status = 'pending', attempts = 0, error = NULL, sweeps = 0,
                      queued_at = now(), started_at = NULL, finished_at = NULL""",
            image_id,
            names,
        )
        # The stages run again, so their open dead letters are dealt with, as by a replay.
        await conn.execute(
            """UPDATE dead_letters SET resolved_at = now(), resolution = 'replayed'
                WHERE image_id = $1 AND stage = ANY($2::text[]) AND resolved_at IS NULL""",
            image_id,
            names,
        )
        # A stage that reads another one being rerun waits for it (queues.AFTER).
        jobs = [
            ImageJob(image_id=image_id, stage=s, object_key=object_key)
            for s in first_stages(wanted)
        ]
        return await outbox.enqueue(conn, jobs, current_context_carrier())


@router.post(
    "/v1/images/{image_id}/reprocess",
    status_code=202,
    response_model=ReprocessAccepted,
    responses={
        401: PROBLEM_RESPONSE,
        404: PROBLEM_RESPONSE,
        409: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
    },
    summary="Run stages of an image again (all of them when none are named)",
)
async def reprocess(
    image_id: str,
    request: Request,
    caller: CurrentCaller,
    body: Annotated[ReprocessRequest | None, Body()] = None,
) -> JSONResponse:
    parsed = parse_image_id(image_id)
    wanted = list(dict.fromkeys(body.stages)) if body is not None and body.stages else list(Stage)
    res = resources(request)
    try:
        async with res.pool.acquire() as conn:
            outbox_ids = await reset_stages(conn, caller.tenant_id, parsed, wanted)
    except StageRunning as exc:
        raise Problem(
            409,
            "stage-running",
            "Stage running",
            f"a worker is running {exc}; reprocess it once it has finished",
            stages=exc.stages,
        ) from exc
    if outbox_ids is None:
        raise image_not_found(parsed)
    res.relay.soon()  # as uploads do
    accepted = ReprocessAccepted(id=parsed, stages={stage: "pending" for stage in wanted})
    return JSONResponse(
        accepted.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/images/{parsed}"},
    )
