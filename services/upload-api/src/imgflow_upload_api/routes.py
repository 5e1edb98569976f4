"""HTTP routes: thin glue between requests and the upload, repository and view modules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from imgflow_contracts.keys import original_key
from imgflow_contracts.queues import Stage
from imgflow_contracts.telemetry import current_context_carrier, mark_image
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.multipart_body import MalformedMultipart, stream_file_field
from imgflow_upload_api.problems import PROBLEM_MEDIA_TYPE, Problem
from imgflow_upload_api.repository import NewImage, fetch_image, insert_image_with_jobs
from imgflow_upload_api.spool import BodyTooLarge, SpooledBody
from imgflow_upload_api.validation import check_framing, check_header
from imgflow_upload_api.views import ImageView, UploadAccepted, image_view

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
    responses={400: _PROBLEM, 413: _PROBLEM, 415: _PROBLEM, 422: _PROBLEM, 503: _PROBLEM},
    summary="Upload an image (raw body, or multipart field `file`)",
)
async def upload_image(request: Request, background: BackgroundTasks) -> JSONResponse:
    res = _resources(request)
    try:
        accepted, outbox_ids = await _accept_upload(request, res)
    except Problem as problem:
        res.metrics.uploads.labels(problem.code).inc()
        raise
    res.metrics.uploads.labels("accepted").inc()
    # Relay after the response is sent: the client never waits on the broker, and the
    # outbox keeps the jobs if this fails.
    background.add_task(res.relay.relay, outbox_ids)
    return JSONResponse(
        accepted.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/images/{accepted.id}"},
    )


async def _accept_upload(request: Request, res: Resources) -> tuple[UploadAccepted, list[int]]:
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
        image_id = uuid4()
        mark_image(image_id)
        image = NewImage(image_id, original_key(image_id), fmt.content_type, body.size, body.sha256)
        await _store_original(res, image, body)
    finally:
        body.close()
    outbox_ids = await _record_or_undo(res, image)
    accepted = UploadAccepted(
        id=image.id,
        status="processing",
        sha256=image.sha256,
        byte_size=image.byte_size,
        content_type=image.content_type,
        stages={stage: "pending" for stage in Stage},
    )
    return accepted, outbox_ids


async def _store_original(res: Resources, image: NewImage, body: SpooledBody) -> None:
    try:
        await asyncio.to_thread(
            res.store.put_stream, image.object_key, body.rewound(), body.size, image.content_type
        )
    except Exception as exc:
        log.exception("storing %s failed", image.object_key)
        raise Problem(
            503,
            "storage-unavailable",
            "Storage unavailable",
            "the image could not be stored; retry later",
            headers=_UNAVAILABLE,
        ) from exc


async def _record_or_undo(res: Resources, image: NewImage) -> list[int]:
    """Record the image and its jobs; if that fails, remove the stored original."""
    try:
        async with res.pool.acquire() as conn:
            return await insert_image_with_jobs(conn, image, current_context_carrier())
    except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
        log.exception("recording image %s failed; removing its object", image.id)
        await _delete_quietly(res, image.object_key)
        raise Problem(
            503,
            "database-unavailable",
            "Database unavailable",
            "the upload could not be recorded; retry later",
            headers=_UNAVAILABLE,
        ) from exc
    except BaseException:
        await _delete_quietly(res, image.object_key)
        raise


async def _delete_quietly(res: Resources, key: str) -> None:
    try:
        await asyncio.to_thread(res.store.delete, key)
    except Exception:
        log.exception("could not delete orphaned object %s", key)


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
    responses={404: _PROBLEM},
    summary="An image's metadata and the status of each processing stage",
)
async def get_image(image_id: str, request: Request) -> ImageView:
    res = _resources(request)
    parsed = _parse_id(image_id)
    async with res.pool.acquire() as conn:
        record = await fetch_image(conn, parsed)
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
