"""The ``uploads`` table: presigned uploads from creation to completion or expiry.

Every read takes the caller's tenant: another tenant's upload is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg

UploadState = Literal["pending", "completed", "failed", "expired"]


@dataclass(frozen=True)
class Upload:
    id: UUID
    tenant_id: UUID
    staging_key: str
    byte_size: int
    sha256: str
    content_type: str | None
    multipart_upload_id: str | None
    part_size: int | None
    state: UploadState
    error_code: str | None
    image_id: UUID | None
    outcome_status: int | None
    created_at: datetime
    expires_at: datetime

    @property
    def is_multipart(self) -> bool:
        return self.multipart_upload_id is not None


_COLUMNS = """id, tenant_id, staging_key, byte_size, sha256, content_type, multipart_upload_id,
              part_size, state, error_code, image_id, outcome_status, created_at, expires_at"""


def _upload(row: asyncpg.Record | None) -> Upload | None:
    return None if row is None else Upload(**dict(row))


async def insert_upload(
    conn: asyncpg.Connection,
    upload_id: UUID,
    tenant_id: UUID,
    staging_key: str,
    byte_size: int,
    sha256: str,
    content_type: str | None,
    multipart_upload_id: str | None,
    part_size: int | None,
    expires_in_s: float,
) -> Upload:
    row = await conn.fetchrow(
        f"""INSERT INTO uploads (id, tenant_id, staging_key, byte_size, sha256, content_type,
                                 multipart_upload_id, part_size, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
            RETURNING {_COLUMNS}""",
        upload_id,
        tenant_id,
        staging_key,
        byte_size,
        sha256,
        content_type,
        multipart_upload_id,
        part_size,
        expires_in_s,
    )
    upload = _upload(row)
    assert upload is not None
    return upload


async def fetch_upload(conn: asyncpg.Connection, tenant_id: UUID, upload_id: UUID) -> Upload | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM uploads WHERE id = $1 AND tenant_id = $2", upload_id, tenant_id
    )
    return _upload(row)


async def claim(
    conn: asyncpg.Connection, tenant_id: UUID, upload_id: UUID, lease_s: float
) -> Upload | None:
    """Take the verification lease of a pending, unexpired upload; None if another
    completion holds it or the upload is not pending (read it to say why)."""
    row = await conn.fetchrow(
        f"""UPDATE uploads SET verifying_until = now() + make_interval(secs => $3)
             WHERE id = $1 AND tenant_id = $2 AND state = 'pending' AND expires_at > now()
               AND (verifying_until IS NULL OR verifying_until < now())
            RETURNING {_COLUMNS}""",
        upload_id,
        tenant_id,
        lease_s,
    )
    return _upload(row)


async def release(conn: asyncpg.Connection, upload_id: UUID) -> None:
    """Give the lease back: the upload stays pending (its bytes are not all there yet)."""
    await conn.execute("UPDATE uploads SET verifying_until = NULL WHERE id = $1", upload_id)


async def mark_completed(
    conn: asyncpg.Connection, upload_id: UUID, image_id: UUID, outcome_status: int
) -> None:
    await conn.execute(
        """UPDATE uploads SET state = 'completed', image_id = $2, outcome_status = $3,
                              verifying_until = NULL
            WHERE id = $1""",
        upload_id,
        image_id,
        outcome_status,
    )


async def mark_failed(conn: asyncpg.Connection, upload_id: UUID, error_code: str) -> None:
    await conn.execute(
        """UPDATE uploads SET state = 'failed', error_code = $2, verifying_until = NULL
            WHERE id = $1""",
        upload_id,
        error_code,
    )


async def due_for_cleaning(conn: asyncpg.Connection, limit: int) -> list[Upload]:
    """Expired uploads whose staged bytes may still be in S3 (in any state: a presigned
    URL works until it expires, even after completion), unless a completion holds them."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM uploads
             WHERE cleaned_at IS NULL AND expires_at <= now()
               AND (verifying_until IS NULL OR verifying_until < now())
             ORDER BY expires_at LIMIT $1""",
        limit,
    )
    return [Upload(**dict(r)) for r in rows]


async def mark_cleaned(conn: asyncpg.Connection, upload_id: UUID) -> None:
    await conn.execute(
        """UPDATE uploads SET cleaned_at = now(),
                              state = CASE WHEN state = 'pending' THEN 'expired' ELSE state END
            WHERE id = $1""",
        upload_id,
    )


async def forget_cleaned(conn: asyncpg.Connection, after_s: float) -> int:
    """Drop rows cleaned this long ago (a repeated completion has had its chance)."""
    status = await conn.execute(
        "DELETE FROM uploads WHERE cleaned_at <= now() - make_interval(secs => $1)", after_s
    )
    return int(status.split()[-1])
