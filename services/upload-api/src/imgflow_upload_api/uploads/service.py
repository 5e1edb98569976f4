"""Record verified bytes as an image: exact-duplicate and Idempotency-Key rules, then the
image, its stages, its jobs and its key in one statement.

Shared by direct uploads and presigned ones: the caller has checked the bytes and knows
their SHA-256; ``store`` puts them under the content-addressed key when that is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from imgflow_contracts.keys import original_key
from imgflow_contracts.queues import Stage
from imgflow_runtime.db.outbox import UPLOAD
from imgflow_runtime.telemetry import current_context_carrier, mark_image
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.uploads import idempotency
from imgflow_upload_api.uploads.idempotency import KeyTaken
from imgflow_upload_api.uploads.repository import (
    KeyRecord,
    NewImage,
    find_prior,
    key_is_referenced,
    record_image,
)

log = logging.getLogger(__name__)

CREATED = 201
EXISTING = 200  # identical bytes of this tenant were already an image
_UNAVAILABLE = {"Retry-After": "5"}


@dataclass(frozen=True)
class VerifiedBytes:
    tenant_id: UUID
    sha256: str
    byte_size: int
    content_type: str
    # Bytes after the image data (a motion photo's video): kept, and recorded.
    trailing_bytes: int = 0
    # outbox.UPLOAD, or outbox.BULK for an import flagged bulk: its jobs wait behind
    # everyone's new uploads
    kind: str = UPLOAD

    @property
    def object_key(self) -> str:
        return original_key(self.tenant_id, self.sha256)


@dataclass(frozen=True)
class Outcome:
    image_id: UUID
    status: int  # CREATED or EXISTING
    # jobs to relay right away (empty unless this request created the image)
    outbox_ids: list[int] = field(default_factory=list)
    # the answer to an Idempotency-Key seen before (sent with Idempotent-Replayed: true)
    replayed: bool = False
    # the image as answered, when this request knows it without reading it back
    # (it created the image: every stage pending)
    summary: dict[str, Any] | None = None


Store = Callable[[str], Awaitable[None]]


async def record_upload(
    res: Resources, facts: VerifiedBytes, idempotency_key: str | None, store: Store
) -> Outcome:
    """Two statements in all: what is known of these bytes and this key, then the record
    itself (image, stages, jobs and key together); S3 gets the bytes in between unless
    they are an image already."""
    ttl = res.settings.idempotency_ttl_s
    try:
        async with res.pool.acquire() as conn:
            prior = await find_prior(conn, facts.tenant_id, facts.object_key, idempotency_key, ttl)
    except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
        raise _database_unavailable() from exc
    if prior.key is not None:
        return _replayed(prior.key, facts)
    if prior.existing is not None and idempotency_key is None:
        return Outcome(prior.existing, EXISTING)  # nothing to write
    if prior.existing is None:
        await _store(store, facts.object_key)
    try:
        return await _record(res, facts, idempotency_key)
    except KeyTaken:
        # A concurrent request with the same key won; answer as it did (or 422).
        if prior.existing is None:
            await _undo_store(res, facts.object_key)
        async with res.pool.acquire() as conn:
            prior = await find_prior(conn, facts.tenant_id, facts.object_key, idempotency_key, ttl)
        if prior.key is None:  # it expired in between: vanishingly rare, safe to retry
            raise _database_unavailable() from None
        return _replayed(prior.key, facts)
    except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
        log.exception("recording an upload of %s failed", facts.object_key)
        if prior.existing is None:
            await _undo_store(res, facts.object_key)
        raise _database_unavailable() from exc
    except BaseException:
        if prior.existing is None:
            await _undo_store(res, facts.object_key)
        raise


def _replayed(record: KeyRecord, facts: VerifiedBytes) -> Outcome:
    remembered = idempotency.replay(record, facts.sha256)  # or 422: other bytes
    return Outcome(remembered.image_id, remembered.status, replayed=True)


async def _record(res: Resources, facts: VerifiedBytes, idempotency_key: str | None) -> Outcome:
    image_id = uuid4()
    mark_image(image_id)
    image = NewImage(
        image_id,
        facts.tenant_id,
        facts.object_key,
        facts.content_type,
        facts.byte_size,
        facts.sha256,
        facts.trailing_bytes,
        facts.kind,
    )
    async with res.pool.acquire() as conn:
        recorded = await record_image(
            conn, image, idempotency_key, res.settings.idempotency_ttl_s, current_context_carrier()
        )
    if recorded is None:
        raise KeyTaken(idempotency_key)
    if recorded.status == EXISTING:  # the same bytes were recorded while we stored them
        return Outcome(recorded.image_id, EXISTING)
    summary = {
        "id": image_id,
        "sha256": facts.sha256,
        "byte_size": facts.byte_size,
        "content_type": facts.content_type,
        "trailing_bytes": facts.trailing_bytes,
        "stages": {stage.value: "pending" for stage in Stage},
    }
    return Outcome(image_id, CREATED, recorded.outbox_ids, summary=summary)


async def _store(store: Store, key: str) -> None:
    try:
        await store(key)
    except Problem:
        raise
    except Exception as exc:
        log.exception("storing %s failed", key)
        raise Problem(
            503,
            "storage-unavailable",
            "Storage unavailable",
            "the image could not be stored; retry later",
            headers=_UNAVAILABLE,
        ) from exc


async def _undo_store(res: Resources, key: str) -> None:
    """Remove an object this request stored, unless an image has come to own it.

    Bytes are content-addressed, so a concurrent upload of the same bytes may own the
    object by now; if PostgreSQL cannot say, the object is removed (that upload is
    failing too, since it needs the same database).
    """
    try:
        async with res.pool.acquire() as conn:
            if await key_is_referenced(conn, key):
                return
    except Exception:
        log.warning("could not check who owns %s; removing it", key)
    try:
        await asyncio.to_thread(res.store.delete, key)
    except Exception:
        log.exception("could not delete orphaned object %s", key)


def _database_unavailable() -> Problem:
    return Problem(
        503,
        "database-unavailable",
        "Database unavailable",
        "the upload could not be recorded; retry later",
        headers=_UNAVAILABLE,
    )
