"""What an accepted upload answers, for POST /v1/images and a presigned upload's completion
alike: the image as recorded (201, or 200 when its bytes were an image already)."""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi.responses import JSONResponse

from imgflow_upload_api.auth import Caller
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.uploads.idempotency import REPLAYED_HEADER
from imgflow_upload_api.uploads.repository import fetch_summary
from imgflow_upload_api.uploads.schemas import upload_accepted
from imgflow_upload_api.uploads.service import CREATED, EXISTING, Outcome


async def answer_upload(
    res: Resources, caller: Caller, recording: Awaitable[Outcome]
) -> JSONResponse:
    """What POST /v1/images and a presigned upload's completion answer: the image as
    recorded (201, or 200 when its bytes were an image already), counted by outcome."""
    try:
        outcome = await recording
        summary = outcome.summary
        if summary is None:  # an image that existed before this request: read it
            async with res.pool.acquire() as conn:
                summary = await fetch_summary(conn, caller.tenant_id, outcome.image_id)
    except Problem as problem:
        res.metrics.uploads.labels(problem.code).inc()
        raise
    if summary is None:  # deleted between being recorded and being read back
        raise Problem(
            409, "image-deleted", "Image deleted", "the image was deleted while uploading"
        )
    res.metrics.uploads.labels("accepted" if outcome.status == CREATED else "existing").inc()
    # The relay sends the jobs on its next pass, batched with other uploads': the client
    # never waits on the broker, and the outbox keeps the jobs if sending fails.
    if outcome.outbox_ids:
        res.relay.soon()
    accepted = upload_accepted(summary, duplicate=outcome.status == EXISTING)
    headers = {"Location": f"/v1/images/{accepted.id}"}
    if outcome.replayed:
        headers[REPLAYED_HEADER] = "true"
    return JSONResponse(
        accepted.model_dump(mode="json"),
        status_code=outcome.status,
        headers=headers,
    )
