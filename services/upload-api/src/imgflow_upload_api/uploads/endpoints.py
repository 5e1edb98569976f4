"""POST /v1/images: receive the body (raw or multipart) as it streams, check it, record it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from imgflow_runtime.db.outbox import BULK, UPLOAD
from imgflow_upload_api.auth import Caller, CurrentCaller
from imgflow_upload_api.dependencies import Resources, resources
from imgflow_upload_api.openapi import LOCATION_HEADER, UPLOAD_REQUEST_BODY
from imgflow_upload_api.problems import PROBLEM_RESPONSE, Problem
from imgflow_upload_api.uploads import idempotency
from imgflow_upload_api.uploads.answers import answer_upload
from imgflow_upload_api.uploads.limits import within_limits
from imgflow_upload_api.uploads.multipart_body import MalformedMultipart, stream_file_field
from imgflow_upload_api.uploads.schemas import UploadAccepted
from imgflow_upload_api.uploads.service import CREATED, Outcome, VerifiedBytes, record_upload
from imgflow_upload_api.uploads.spool import BodyTooLarge, SpooledBody
from imgflow_upload_api.uploads.validation import check_format, inspect

log = logging.getLogger(__name__)
router = APIRouter()

# Bodies up to this size, held in memory, are inspected on the event loop.
INLINE_CHECK_BYTES = 256 * 1024


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "payload-too-large",
        "Payload too large",
        f"uploads are limited to {limit} bytes",
        max_bytes=limit,
    )


def _check_declared_length(request: Request, limit: int) -> int | None:
    """Refuse an oversized body from its Content-Length, before reading any of it;
    the declared length, if any."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise Problem(
            400,
            "bad-content-length",
            "Bad Content-Length",
            "Content-Length must be a non-negative integer",
        )
    if int(declared) > limit:
        raise _too_large(limit)
    return int(declared)


async def _receive(request: Request, body: SpooledBody) -> None:
    content_type = request.headers.get("content-type", "")
    chunks: AsyncIterator[bytes] = request.stream()
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        await stream_file_field(content_type, chunks, body.write)
    else:
        async for chunk in chunks:
            body.write(chunk)


@router.post(
    "/v1/images",
    status_code=201,
    response_model=UploadAccepted,
    responses={
        200: {"model": UploadAccepted, "description": "Identical bytes were already an image"},
        201: {
            "description": "The image is recorded; processing has begun",
            "headers": LOCATION_HEADER,
        },
        400: PROBLEM_RESPONSE,
        401: PROBLEM_RESPONSE,
        409: PROBLEM_RESPONSE,
        403: PROBLEM_RESPONSE,
        413: PROBLEM_RESPONSE,
        415: PROBLEM_RESPONSE,
        422: PROBLEM_RESPONSE,
        429: PROBLEM_RESPONSE,
        503: PROBLEM_RESPONSE,
    },
    summary="Upload an image (raw body, or multipart field `file`)",
    description=(
        "Any bytes match the schema; whether they are an image only their content says. "
        "Bytes of no supported format are refused with 415 `unsupported-format`; an image "
        "that cannot be decoded with 422 `corrupt-image` or `truncated-image`, one past the "
        "pixel limit with 422 `image-too-large`; a body past the deployment's size limit "
        "with 413 `payload-too-large`. An `Idempotency-Key` already used for other bytes "
        "is 422 `idempotency-key-reused`."
    ),
    openapi_extra={"requestBody": UPLOAD_REQUEST_BODY},
)
async def upload_image(
    request: Request,
    caller: CurrentCaller,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="Retries with the same key answer with the first request's image.",
        ),
    ] = None,
    bulk: Annotated[
        bool,
        Query(
            description="An import: this image's processing waits behind everyone's new "
            "uploads (fair scheduling), so a large import does not slow them down."
        ),
    ] = False,
) -> JSONResponse:
    res = resources(request)
    kind = BULK if bulk else UPLOAD
    return await answer_upload(
        res, caller, _accept_upload(request, res, caller, idempotency_key, kind)
    )


async def _accept_upload(
    request: Request, res: Resources, caller: Caller, idempotency_header: str | None, kind: str
) -> Outcome:
    idempotency_key = idempotency.parse_key(idempotency_header)
    res.backpressure.admit(caller.tenant_id)
    limit = res.settings.upload_max_bytes
    declared = _check_declared_length(request, limit)
    async with within_limits(res, caller.tenant_id, declared) as tenant:
        outcome, size = await _receive_and_record(
            request, res, caller, idempotency_key, limit, kind
        )
        if outcome.status == CREATED:
            tenant.state.recorded(size)
        return outcome


async def _receive_and_record(
    request: Request,
    res: Resources,
    caller: Caller,
    idempotency_key: str | None,
    limit: int,
    kind: str,
) -> tuple[Outcome, int]:
    body = SpooledBody(limit, res.settings.upload_memory_spool_bytes)
    try:
        try:
            await _receive(request, body)
        except BodyTooLarge as exc:
            raise _too_large(exc.limit) from exc
        except MalformedMultipart as exc:
            raise Problem(400, "malformed-multipart", "Malformed multipart body", str(exc)) from exc
        except ClientDisconnect as exc:
            raise Problem(
                400,
                "incomplete-body",
                "Incomplete body",
                "the client disconnected before the body ended",
            ) from exc
        fmt = check_format(body.size, body.head)
        max_pixels = res.settings.upload_max_pixels
        args = (fmt, body.rewound(), body.size, max_pixels, body.sha256)
        if body.size <= INLINE_CHECK_BYTES and body.in_memory:
            # A small in-memory body parses in tens of microseconds: less than the hop
            # to a thread and back.
            inspection = inspect(*args)
        else:
            inspection = await asyncio.to_thread(inspect, *args)
        facts = VerifiedBytes(
            caller.tenant_id,
            body.sha256,
            body.size,
            fmt.content_type,
            inspection.trailing_bytes,
            kind,
        )

        async def store(key: str) -> None:
            # With the digest, S3 verifies the bytes and keeps it: the hasher need not re-read.
            await res.s3_writer.put(key, body.rewound(), body.size, fmt.content_type, body.sha256)

        return await record_upload(res, facts, idempotency_key, store), body.size
    finally:
        body.close()
