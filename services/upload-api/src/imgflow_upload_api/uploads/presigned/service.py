"""Presigned uploads: the client sends the bytes straight to S3, then asks to complete.

Start: a row in ``uploads`` and a presigned PUT URL for the staging key
``staging/{tenant}/{upload}`` (or, above a size, an S3 multipart upload and one URL per
part). Complete: take a lease on the row, assemble and verify the staged object, record
it as a normal upload (``uploads.service.record_upload``: dedupe, Idempotency-Key, jobs) by a
server-side copy to its content-addressed key, then drop the staged object. A failed
check fails the upload and removes what was staged; an upload not (fully) sent yet stays
pending, so the client may finish sending and complete again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from uuid import UUID, uuid4

from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.uploads.presigned.plans import PlannedPart, part_size_for, plan_parts
from imgflow_upload_api.uploads.presigned.repository import (
    Upload,
    claim,
    fetch_upload,
    insert_upload,
    mark_completed,
    mark_failed,
    release,
)
from imgflow_upload_api.uploads.presigned.verification import (
    RETRYABLE,
    assemble,
    copy_verified,
    verify,
)
from imgflow_upload_api.uploads.service import EXISTING, Outcome, VerifiedBytes, record_upload

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long one completion may take before another may try again (a crashed one's lease
# lapses): verifying is about one read of the object, so minutes even at 5 GiB.
VERIFY_LEASE_S = 900.0
_UNAVAILABLE = {"Retry-After": "5"}


def staging_key(tenant_id: UUID, upload_id: UUID) -> str:
    return f"staging/{tenant_id}/{upload_id}"


@dataclass(frozen=True)
class PresignedPart:
    part: PlannedPart
    url: str


@dataclass(frozen=True)
class Started:
    upload: Upload
    url: str | None  # the single PUT URL, or None for a multipart upload
    parts: list[PresignedPart]


async def start_upload(
    res: Resources,
    presigner: ObjectStore,
    tenant_id: UUID,
    byte_size: int,
    sha256: str,
    content_type: str | None,
) -> Started:
    settings = res.settings
    if byte_size > settings.upload_presigned_max_bytes:
        raise Problem(
            413,
            "payload-too-large",
            "Payload too large",
            f"presigned uploads are limited to {settings.upload_presigned_max_bytes} bytes",
            max_bytes=settings.upload_presigned_max_bytes,
        )
    upload_id = uuid4()
    key = staging_key(tenant_id, upload_id)
    expires = timedelta(seconds=settings.upload_expiry_s)
    multipart_id: str | None = None
    part_size: int | None = None
    if byte_size > settings.upload_multipart_threshold_bytes:
        part_size = part_size_for(byte_size, settings.upload_part_size_bytes)
        multipart_id = await _storage(asyncio.to_thread(res.store.create_multipart, key))
    try:
        async with res.pool.acquire() as conn:
            upload = await insert_upload(
                conn,
                upload_id,
                tenant_id,
                key,
                byte_size,
                sha256,
                content_type,
                multipart_id,
                part_size,
                settings.upload_expiry_s,
            )
    except BaseException:
        if multipart_id is not None:
            await _quietly(asyncio.to_thread(res.store.abort_multipart, key, multipart_id))
        raise
    if multipart_id is None:
        return Started(upload, presigner.presign_put(key, expires), [])

    def presign_parts() -> list[PresignedPart]:
        assert part_size is not None and multipart_id is not None
        return [
            PresignedPart(part, presigner.presign_part(key, multipart_id, part.number, expires))
            for part in plan_parts(byte_size, part_size)
        ]

    # up to 10,000 HMACs: off the event loop
    return Started(upload, None, await asyncio.to_thread(presign_parts))


async def complete_upload(
    res: Resources, tenant_id: UUID, upload_id: UUID, idempotency_key: str | None
) -> Outcome:
    async with res.pool.acquire() as conn:
        upload = await claim(conn, tenant_id, upload_id, VERIFY_LEASE_S)
        if upload is None:
            return _settled(await fetch_upload(conn, tenant_id, upload_id), upload_id)
    try:
        stored = await _storage(asyncio.to_thread(assemble, res.store, upload))
        verified = await _storage(
            asyncio.to_thread(verify, res.store, stored, upload, res.settings.upload_max_pixels)
        )
    except Problem as problem:
        if problem.status >= 500 or problem.code in RETRYABLE:
            await _release(res, upload)
        else:  # the bytes are not what was declared, or not an acceptable image
            await _fail(res, upload, problem.code)
        raise
    except BaseException:
        await _release(res, upload)
        raise
    fmt = verified.format
    facts = VerifiedBytes(
        tenant_id,
        upload.sha256,
        upload.byte_size,
        fmt.content_type,
        verified.inspection.trailing_bytes,
    )

    async def store(key: str) -> None:
        await asyncio.to_thread(copy_verified, res.store, stored, key, fmt)

    try:
        outcome = await record_upload(res, facts, idempotency_key, store)
    except BaseException:
        # Good bytes, but not recorded (storage or database down, a reused
        # Idempotency-Key): the upload stays pending, so completing again may succeed.
        await _release(res, upload)
        raise
    try:
        async with res.pool.acquire() as conn:
            await mark_completed(conn, upload.id, outcome.image_id, outcome.status)
    except Exception:
        # The image is recorded; a retry once the lease lapses verifies the staged bytes
        # again and finds that image (so they stay until the expiry pass).
        log.exception("could not mark upload %s completed", upload.id)
        return outcome
    # The staged copy is garbage now (if this fails, the expiry pass removes it).
    await _quietly(discard_staged(res.store, upload))
    return outcome


def upload_not_found(shown: str) -> Problem:
    return Problem(404, "upload-not-found", "Upload not found", f"no upload has the id {shown}")


def _settled(upload: Upload | None, upload_id: UUID) -> Outcome:
    """The answer for an upload this request could not claim."""
    if upload is None:
        raise upload_not_found(str(upload_id))
    if upload.state == "completed":
        if upload.image_id is None:
            raise Problem(
                409, "image-deleted", "Image deleted", "the uploaded image has been deleted"
            )
        return Outcome(upload.image_id, upload.outcome_status or EXISTING)
    if upload.state == "failed":
        raise Problem(
            409,
            "upload-failed",
            "Upload failed",
            f"the upload failed its verification ({upload.error_code}); start a new one",
            reason=upload.error_code,
        )
    if upload.state == "expired" or upload.expires_at <= datetime.now(UTC):
        raise Problem(
            410, "upload-expired", "Upload expired", "the upload expired; start a new one"
        )
    raise Problem(
        409,
        "upload-in-progress",
        "Upload being completed",
        "another request is completing this upload; retry shortly",
        headers=_UNAVAILABLE,
    )


async def discard_staged(store: ObjectStore, upload: Upload) -> None:
    """Remove what the client staged: the object, and an unfinished multipart upload
    (one already completed or aborted is fine)."""
    if upload.multipart_upload_id is not None:
        await asyncio.to_thread(
            store.abort_multipart, upload.staging_key, upload.multipart_upload_id
        )
    await asyncio.to_thread(store.delete, upload.staging_key)


async def _fail(res: Resources, upload: Upload, code: str) -> None:
    try:
        async with res.pool.acquire() as conn:
            await mark_failed(conn, upload.id, code)
    except Exception:
        log.exception("could not mark upload %s failed", upload.id)
    await _quietly(discard_staged(res.store, upload))


async def _release(res: Resources, upload: Upload) -> None:
    try:
        async with res.pool.acquire() as conn:
            await release(conn, upload.id)
    except Exception:
        log.exception("could not release upload %s (its lease will lapse)", upload.id)


async def _storage(call: Awaitable[T]) -> T:
    """Await an S3 call; an S3 failure is the client's 503, never a 500."""
    try:
        return await call
    except Problem:
        raise
    except Exception as exc:
        log.exception("S3 failed during a presigned upload")
        raise Problem(
            503,
            "storage-unavailable",
            "Storage unavailable",
            "storage could not be reached; retry later",
            headers=_UNAVAILABLE,
        ) from exc


async def _quietly(call: Awaitable[object]) -> None:
    """Best-effort cleanup: what is left is removed by the expiry pass."""
    try:
        await call
    except Exception:
        log.exception("cleanup after a presigned upload failed")
