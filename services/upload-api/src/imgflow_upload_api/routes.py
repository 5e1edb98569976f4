"""HTTP routes: thin glue between requests and the upload, repository and view modules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from imgflow_upload_api import idempotency
from imgflow_upload_api.auth import Caller, CurrentCaller
from imgflow_upload_api.contract import LOCATION_HEADER, UPLOAD_REQUEST_BODY
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.intake import CREATED, EXISTING, Outcome, VerifiedBytes, record_upload
from imgflow_upload_api.multipart_body import MalformedMultipart, stream_file_field
from imgflow_upload_api.problems import PROBLEM_MEDIA_TYPE, Problem
from imgflow_upload_api.repository import fetch_image, fetch_summary
from imgflow_upload_api.spool import BodyTooLarge, SpooledBody
from imgflow_upload_api.validation import check_framing, check_header
from imgflow_upload_api.views import ImageView, UploadAccepted, image_view, upload_accepted

log = logging.getLogger(__name__)
router = APIRouter()

_PROBLEM = {"content": {PROBLEM_MEDIA_TYPE: {}}, "description": "RFC 9457 problem details"}
_UNAVAILABLE = {"Retry-After": "5"}


def _resources(request: Request) -> Resources:
    return request.app.state.resources  # type: ignore[no-any-return]


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "payload-too-large",
        "Payload too large",
        f"uploads are limited to {limit} bytes",
        max_bytes=limit,
    )


def _check_declared_length(request: Request, limit: int) -> None:
    """Refuse an oversized body from its Content-Length, before reading any of it."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise Problem(
            400,
            "bad-content-length",
            "Bad Content-Length",
            "Content-Length must be a non-negative integer",
        )
    if int(declared) > limit:
        raise _too_large(limit)


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
        400: _PROBLEM,
        401: _PROBLEM,
        409: _PROBLEM,
        413: _PROBLEM,
        415: _PROBLEM,
        422: _PROBLEM,
        503: _PROBLEM,
    },
    summary="Upload an image (raw body, or multipart field `file`)",
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
) -> JSONResponse:
    res = _resources(request)
    return await answer_upload(res, caller, _accept_upload(request, res, caller, idempotency_key))


async def answer_upload(
    res: Resources, caller: Caller, recording: Awaitable[Outcome]
) -> JSONResponse:
    """What POST /v1/images and a presigned upload's completion answer: the image as
    recorded (201, or 200 when its bytes were an image already), counted by outcome."""
    try:
        outcome = await recording
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
    return JSONResponse(
        accepted.model_dump(mode="json"),
        status_code=outcome.status,
        headers={"Location": f"/v1/images/{accepted.id}"},
    )


async def _accept_upload(
    request: Request, res: Resources, caller: Caller, idempotency_header: str | None
) -> Outcome:
    idempotency_key = idempotency.parse_key(idempotency_header)
    res.backpressure.admit()
    limit = res.settings.upload_max_bytes
    _check_declared_length(request, limit)
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
        fmt = check_framing(body)
        await asyncio.to_thread(check_header, fmt, body.rewound(), res.settings.upload_max_pixels)
        facts = VerifiedBytes(caller.tenant_id, body.sha256, body.size, fmt.content_type)

        async def store(key: str) -> None:
            await asyncio.to_thread(
                res.store.put_stream, key, body.rewound(), body.size, fmt.content_type
            )

        return await record_upload(res, facts, idempotency_key, store)
    finally:
        body.close()


def _parse_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError as exc:
        raise Problem(
            404, "image-not-found", "Image not found", f"no image has the id {raw!r}"
        ) from exc


@router.get(
    "/v1/images/{image_id}",
    response_model=ImageView,
    responses={401: _PROBLEM, 404: _PROBLEM},
    summary="An image's metadata and the status of each processing stage",
)
async def get_image(image_id: str, request: Request, caller: CurrentCaller) -> ImageView:
    res = _resources(request)
    parsed = _parse_id(image_id)
    async with res.pool.acquire() as conn:
        record = await fetch_image(conn, caller.tenant_id, parsed)
    if record is None:
        raise Problem(404, "image-not-found", "Image not found", f"no image has the id {parsed}")
    return image_view(record)


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", summary="Readiness: PostgreSQL, the broker and S3 answer", responses={503: _PROBLEM}
)
async def readyz(request: Request) -> dict[str, Any]:
    res = _resources(request)

    async def postgres() -> None:
        async with res.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    checks = {
        "postgres": postgres(),
        "broker": asyncio.to_thread(res.broker.ping),
        "s3": asyncio.to_thread(res.store.ping),
    }
    results = await asyncio.gather(
        *(asyncio.wait_for(c, timeout=3) for c in checks.values()), return_exceptions=True
    )
    status = {
        name: ("ok" if not isinstance(r, BaseException) else f"{type(r).__name__}: {r}")
        for name, r in zip(checks, results, strict=True)
    }
    if any(v != "ok" for v in status.values()):
        raise Problem(
            503,
            "not-ready",
            "Not ready",
            "a dependency is unreachable",
            headers=_UNAVAILABLE,
            checks=status,
        )
    return {"status": "ready", "checks": status}
