"""The uploads' queries: what is known before storing, recording an accepted upload with
its jobs and Idempotency-Key (one statement), reading back what it answers, and expiring keys.

Every read takes the caller's tenant: an image of another tenant is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage, first_stages
from imgflow_runtime.db.outbox import UPLOAD


@dataclass(frozen=True)
class NewImage:
    id: UUID
    tenant_id: UUID
    object_key: str
    content_type: str
    byte_size: int
    sha256: str
    trailing_bytes: int = 0
    kind: str = UPLOAD  # of its jobs, for the fair relay (outbox.KINDS)


CREATED = 201
# Raised by imgflow_record_upload (migration 0013) when a live record of the
# Idempotency-Key exists: nothing was recorded.
KEY_TAKEN = "IK001"


@dataclass(frozen=True)
class KeyRecord:
    """The live record of an Idempotency-Key: the first answer and the bytes it was for."""

    image_id: UUID
    status: int
    sha256: str


@dataclass(frozen=True)
class Prior:
    """What is known before storing: an image with these bytes, and the key's record."""

    existing: UUID | None
    key: KeyRecord | None


@dataclass(frozen=True)
class Recorded:
    image_id: UUID
    status: int  # 201: this image was created; 200: the bytes were an image already
    outbox_ids: list[int]


async def find_prior(
    conn: asyncpg.Connection, tenant_id: UUID, object_key: str, key: str | None, ttl_s: float
) -> Prior:
    """One query: the image with ``object_key`` and the live record of ``key`` (if any)."""
    row = await conn.fetchrow(
        """SELECT (SELECT id FROM images WHERE object_key = $1) AS existing,
                  k.image_id, k.status, k.sha256
             FROM (VALUES (1)) AS one (x)
             LEFT JOIN idempotency_keys AS k
               ON k.tenant_id = $2 AND k.key = $3
              AND k.created_at > now() - make_interval(secs => $4)""",
        object_key,
        tenant_id,
        key,
        ttl_s,
    )
    assert row is not None  # one row always: the VALUES
    record = None
    if row["image_id"] is not None:
        record = KeyRecord(row["image_id"], row["status"], row["sha256"])
    return Prior(row["existing"], record)


async def record_image(
    conn: asyncpg.Connection,
    image: NewImage,
    key: str | None,
    key_ttl_s: float,
    trace_context: dict[str, str],
) -> Recorded | None:
    """Record the image with its pending stages, first jobs and ``key`` in one statement
    (migration 0013), or answer with the image that has these bytes already (200).

    None when a live record of ``key`` exists (another request made it first): then
    nothing was written.
    """
    # The rest are enqueued by the stage they wait for (queues.AFTER).
    jobs = [
        ImageJob(image_id=image.id, stage=s, object_key=image.object_key)
        for s in first_stages(list(Stage))
    ]
    try:
        if image.trailing_bytes:
            # Rare (motion photos and the like): a transaction of its own, so the common
            # upload keeps its single statement.
            async with conn.transaction():
                row = await _call_record_upload(conn, image, jobs, key, key_ttl_s, trace_context)
                if row is not None and row["recorded_status"] == CREATED:
                    await conn.execute(
                        "UPDATE images SET trailing_bytes = $2 WHERE id = $1",
                        image.id,
                        image.trailing_bytes,
                    )
        else:
            row = await _call_record_upload(conn, image, jobs, key, key_ttl_s, trace_context)
    except asyncpg.PostgresError as exc:
        if exc.sqlstate == KEY_TAKEN:
            return None
        raise
    assert row is not None
    return Recorded(row["recorded_image"], row["recorded_status"], list(row["queued"]))


async def _call_record_upload(
    conn: asyncpg.Connection,
    image: NewImage,
    jobs: list[ImageJob],
    key: str | None,
    key_ttl_s: float,
    trace_context: dict[str, str],
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM imgflow_record_upload("
        "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb[], $11, $12, $13, $14)",
        image.id,
        image.tenant_id,
        image.object_key,
        image.content_type,
        image.byte_size,
        image.sha256,
        [stage.value for stage in Stage],
        [job.stage.task_name for job in jobs],
        [job.stage.queue for job in jobs],
        [job.to_message() for job in jobs],
        trace_context,
        key,
        key_ttl_s,
        image.kind,
    )


async def key_is_referenced(conn: asyncpg.Connection, object_key: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM images WHERE object_key = $1)", object_key
        )
    )


async def fetch_summary(
    conn: asyncpg.Connection, tenant_id: UUID, image_id: UUID
) -> dict[str, Any] | None:
    """What an upload answers about an image: its facts and each stage's status."""
    row = await conn.fetchrow(
        """SELECT i.id, i.sha256, i.byte_size, i.content_type, i.trailing_bytes,
                  jsonb_object_agg(s.stage, s.status) AS stages
             FROM images AS i JOIN image_stages AS s ON s.image_id = i.id
            WHERE i.id = $1 AND i.tenant_id = $2
            GROUP BY i.id""",
        image_id,
        tenant_id,
    )
    return None if row is None else dict(row)


async def forget_expired_keys(conn: asyncpg.Connection, ttl_s: float) -> int:
    status = await conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at <= now() - make_interval(secs => $1)",
        ttl_s,
    )
    return int(status.split()[-1])
