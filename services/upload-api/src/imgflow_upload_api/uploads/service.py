"""Record verified bytes as an image: exact-duplicate and Idempotency-Key rules, then the
image, its stages and its jobs in one transaction.

Shared by direct uploads and presigned ones: the caller has checked the bytes and knows
their SHA-256; ``store`` puts them under the content-addressed key when that is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import asyncpg

from imgflow_contracts.keys import original_key
from imgflow_runtime.telemetry import current_context_carrier, mark_image
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.uploads import idempotency
from imgflow_upload_api.uploads.idempotency import KeyTaken, Remembered
from imgflow_upload_api.uploads.repository import (
    NewImage,
    image_with_key,
    insert_image_with_jobs,
    key_is_referenced,
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

    @property
    def object_key(self) -> str:
        return original_key(self.tenant_id, self.sha256)


@dataclass(frozen=True)
class Outcome:
    image_id: UUID
    status: int  # CREATED or EXISTING
    # jobs to relay right away (empty unless this request created the image)
    outbox_ids: list[int] = field(default_factory=list)


Store = Callable[[str], Awaitable[None]]


async def record_upload(
    res: Resources, facts: VerifiedBytes, idempotency_key: str | None, store: Store
) -> Outcome:
    ttl = res.settings.idempotency_ttl_s
    try:
        async with res.pool.acquire() as conn:
            if idempotency_key is not None:
                remembered = await idempotency.recall(
                    conn, facts.tenant_id, idempotency_key, facts.sha256, ttl
                )
                if remembered is not None:
                    return Outcome(remembered.image_id, remembered.status)
            existing = await image_with_key(conn, facts.object_key)
    except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
        raise _database_unavailable() from exc
    if existing is None:
        await _store(store, facts.object_key)
    try:
        return await _insert(res, facts, idempotency_key, existing)
    except KeyTaken:
        # A concurrent request with the same key won; answer as it did (or 422).
        await _undo_store(res, facts.object_key)
        async with res.pool.acquire() as conn:
            remembered = await idempotency.recall(
                conn, facts.tenant_id, idempotency_key or "", facts.sha256, ttl
            )
        if remembered is None:  # it expired in between: vanishingly rare, safe to retry
            raise _database_unavailable() from None
        return Outcome(remembered.image_id, remembered.status)
    except (TimeoutError, asyncpg.PostgresError, OSError) as exc:
        log.exception("recording an upload of %s failed", facts.object_key)
        if existing is None:
            await _undo_store(res, facts.object_key)
        raise _database_unavailable() from exc
    except BaseException:
        if existing is None:
            await _undo_store(res, facts.object_key)
        raise


async def _insert(
    res: Resources, facts: VerifiedBytes, idempotency_key: str | None, existing: UUID | None
) -> Outcome:
    async with res.pool.acquire() as conn, conn.transaction():
        outcome = Outcome(existing, EXISTING) if existing is not None else None
        if outcome is None:
            image_id = uuid4()
            mark_image(image_id)
            image = NewImage(
                image_id,
                facts.tenant_id,
                facts.object_key,
                facts.content_type,
                facts.byte_size,
                facts.sha256,
            )
            outbox_ids = await insert_image_with_jobs(conn, image, current_context_carrier())
            if outbox_ids is not None:
                outcome = Outcome(image_id, CREATED, outbox_ids)
            else:  # the same bytes were recorded while we stored them
                winner = await image_with_key(conn, facts.object_key)
                assert winner is not None
                outcome = Outcome(winner, EXISTING)
        if idempotency_key is not None:
            await idempotency.remember(
                conn,
                facts.tenant_id,
                idempotency_key,
                facts.sha256,
                Remembered(outcome.image_id, outcome.status),
                res.settings.idempotency_ttl_s,
            )
        return outcome


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
