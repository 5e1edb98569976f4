"""HTTP routes of presigned uploads: the bytes go straight to S3, not through the API.

POST /v1/uploads answers with where to PUT the bytes; POST /v1/uploads/{id}/complete
verifies them and answers like POST /v1/images; GET /v1/uploads/{id} tells the state.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import parse_id, presigner, resources
from imgflow_upload_api.problems import PROBLEM_RESPONSE
from imgflow_upload_api.uploads import idempotency
from imgflow_upload_api.uploads.answers import answer_upload
from imgflow_upload_api.uploads.limits import within_limits
from imgflow_upload_api.uploads.presigned.repository import fetch_upload
from imgflow_upload_api.uploads.presigned.schemas import (
    PartUrl,
    UploadRequest,
    UploadStatus,
    UploadTicket,
)
from imgflow_upload_api.uploads.presigned.service import (
    Started,
    complete_upload,
    start_upload,
    upload_not_found,
)
from imgflow_upload_api.uploads.schemas import UploadAccepted
from imgflow_upload_api.uploads.service import CREATED, Outcome

router = APIRouter()


@router.post(
    "/v1/uploads",
    status_code=201,
    response_model=UploadTicket,
    responses={
        401: PROBLEM_RESPONSE,
        413: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
        503: PROBLEM_RESPONSE,
    },
    summary="Start a presigned upload: PUT the bytes straight to storage, then complete",
)
async def create_upload(
    body: UploadRequest, request: Request, caller: CurrentCaller
) -> JSONResponse:
    res = resources(request)
    started = await start_upload(
        res,
        presigner(request),
        caller.tenant_id,
        body.byte_size,
        body.sha256.lower(),
        body.content_type,
    )
    ticket = _ticket(started)
    return JSONResponse(
        ticket.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/uploads/{ticket.id}"},
    )


def _ticket(started: Started) -> UploadTicket:
    upload = started.upload
    return UploadTicket(
        id=upload.id,
        state=upload.state,
        byte_size=upload.byte_size,
        sha256=upload.sha256,
        expires_at=upload.expires_at,
        url=started.url,
        part_size=upload.part_size,
        parts=[
            PartUrl(
                part_number=p.part.number, url=p.url, offset=p.part.offset, byte_size=p.part.size
            )
            for p in started.parts
        ],
        complete_url=f"/v1/uploads/{upload.id}/complete",
    )


@router.post(
    "/v1/uploads/{upload_id}/complete",
    status_code=201,
    response_model=UploadAccepted,
    responses={
        200: {"model": UploadAccepted, "description": "Identical bytes were already an image"},
        400: PROBLEM_RESPONSE,
        401: PROBLEM_RESPONSE,
        403: PROBLEM_RESPONSE,
        404: PROBLEM_RESPONSE,
        409: PROBLEM_RESPONSE,
        410: PROBLEM_RESPONSE,
        415: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
        429: PROBLEM_RESPONSE,
        503: PROBLEM_RESPONSE,
    },
    summary="Verify the uploaded bytes (size, format, SHA-256) and record them as an image",
    description=(
        "Decided by the bytes stored, not by this request: 422 `size-mismatch` or "
        "`checksum-mismatch` when they are not what was declared, 415 "
        "`unsupported-format` when they are no supported image, 422 `corrupt-image`, "
        "`truncated-image` or `image-too-large` as for a direct upload, 410 "
        "`upload-expired` past the upload's expiry."
    ),
)
async def complete(
    upload_id: str,
    request: Request,
    caller: CurrentCaller,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="As on POST /v1/images: retries answer with the first image.",
        ),
    ] = None,
) -> JSONResponse:
    res = resources(request)
    parsed = parse_id(upload_id, upload_not_found)

    async def recording() -> Outcome:
        # Completing records an image and enqueues its jobs, as a direct upload does: the
        # same backpressure and tenant limits (the size is checked against the quota
        # once known; the stored bytes count from the next usage read).
        res.backpressure.admit(caller.tenant_id)
        key = idempotency.parse_key(idempotency_key)
        async with within_limits(res, caller.tenant_id, None) as tenant:
            outcome = await complete_upload(res, caller.tenant_id, parsed, key)
            if outcome.status == CREATED and outcome.summary is not None:
                tenant.state.recorded(int(outcome.summary["byte_size"]))
            return outcome

    return await answer_upload(res, caller, recording())


@router.get(
    "/v1/uploads/{upload_id}",
    response_model=UploadStatus,
    responses={401: PROBLEM_RESPONSE, 404: PROBLEM_RESPONSE},
    summary="A presigned upload's state (pending, completed, failed, expired)",
)
async def get_upload(upload_id: str, request: Request, caller: CurrentCaller) -> UploadStatus:
    res = resources(request)
    parsed = parse_id(upload_id, upload_not_found)
    async with res.pool.acquire() as conn:
        upload = await fetch_upload(conn, caller.tenant_id, parsed)
    if upload is None:
        raise upload_not_found(str(parsed))
    return UploadStatus(
        id=upload.id,
        state=upload.state,
        byte_size=upload.byte_size,
        sha256=upload.sha256,
        multipart=upload.is_multipart,
        expires_at=upload.expires_at,
        image_id=upload.image_id,
        error=upload.error_code,
    )
