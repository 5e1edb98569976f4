"""HTTP routes of presigned uploads: the bytes go straight to S3, not through the API.

POST /v1/uploads answers with where to PUT the bytes; POST /v1/uploads/{id}/complete
verifies them and answers like POST /v1/images; GET /v1/uploads/{id} tells the state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from imgflow_upload_api import idempotency
from imgflow_upload_api.auth import CurrentCaller
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.intake import Outcome
from imgflow_upload_api.presigned_uploads import Started, complete_upload, start_upload
from imgflow_upload_api.presigning import presigner
from imgflow_upload_api.problems import PROBLEM_MEDIA_TYPE, Problem
from imgflow_upload_api.routes import answer_upload
from imgflow_upload_api.upload_sessions import UploadState, fetch_upload
from imgflow_upload_api.views import UploadAccepted

router = APIRouter()

_PROBLEM = {"content": {PROBLEM_MEDIA_TYPE: {}}, "description": "RFC 9457 problem details"}


class UploadRequest(BaseModel):
    byte_size: int = Field(gt=0, description="The exact size of the file, in bytes.")
    sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        description="SHA-256 of the file (hex); the stored bytes must have it.",
    )
    content_type: str | None = Field(
        default=None,
        max_length=255,
        description="Recorded only: the format is read from the bytes themselves.",
    )


class PartUrl(BaseModel):
    part_number: int
    url: str
    offset: int = Field(description="Where in the file this part starts.")
    byte_size: int


class UploadTicket(BaseModel):
    id: UUID
    state: UploadState
    byte_size: int
    sha256: str
    expires_at: datetime
    method: Literal["PUT"] = "PUT"
    # A single PUT of the whole file to ``url``; or, for a multipart upload, one PUT per
    # part to its URL (any order, in parallel), then complete.
    url: str | None
    part_size: int | None
    parts: list[PartUrl]
    complete_url: str


class UploadStatus(BaseModel):
    id: UUID
    state: UploadState
    byte_size: int
    sha256: str
    multipart: bool
    expires_at: datetime
    image_id: UUID | None
    error: str | None


def _resources(request: Request) -> Resources:
    return request.app.state.resources  # type: ignore[no-any-return]


def _parse_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError as exc:
        raise Problem(
            404, "upload-not-found", "Upload not found", f"no upload has the id {raw!r}"
        ) from exc


@router.post(
    "/v1/uploads",
    status_code=201,
    response_model=UploadTicket,
    responses={401: _PROBLEM, 413: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
    summary="Start a presigned upload: PUT the bytes straight to storage, then complete",
)
async def create_upload(
    body: UploadRequest, request: Request, caller: CurrentCaller
) -> JSONResponse:
    res = _resources(request)
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
        401: _PROBLEM,
        404: _PROBLEM,
        409: _PROBLEM,
        410: _PROBLEM,
        415: _PROBLEM,
        422: _PROBLEM,
        503: _PROBLEM,
    },
    summary="Verify the uploaded bytes (size, format, SHA-256) and record them as an image",
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
    res = _resources(request)
    parsed = _parse_id(upload_id)

    async def recording() -> Outcome:
        res.backpressure.admit()  # completing enqueues jobs, as a direct upload does
        key = idempotency.parse_key(idempotency_key)
        return await complete_upload(res, caller.tenant_id, parsed, key)

    return await answer_upload(res, caller, recording())


@router.get(
    "/v1/uploads/{upload_id}",
    response_model=UploadStatus,
    responses={401: _PROBLEM, 404: _PROBLEM},
    summary="A presigned upload's state (pending, completed, failed, expired)",
)
async def get_upload(upload_id: str, request: Request, caller: CurrentCaller) -> UploadStatus:
    res = _resources(request)
    parsed = _parse_id(upload_id)
    async with res.pool.acquire() as conn:
        upload = await fetch_upload(conn, caller.tenant_id, parsed)
    if upload is None:
        raise Problem(404, "upload-not-found", "Upload not found", f"no upload has the id {parsed}")
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
