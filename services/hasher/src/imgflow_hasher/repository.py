"""The hasher's reads and writes on the image row."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from imgflow_hasher.analysis import ImageFacts


@dataclass(frozen=True)
class UploadRecord:
    """What the API recorded when it accepted the bytes."""

    sha256: str
    byte_size: int


async def upload_record(conn: asyncpg.Connection, image_id: UUID) -> UploadRecord | None:
    row = await conn.fetchrow("SELECT sha256, byte_size FROM images WHERE id = $1", image_id)
    return None if row is None else UploadRecord(row["sha256"], row["byte_size"])


async def record_facts(conn: asyncpg.Connection, image_id: UUID, facts: ImageFacts) -> bool:
    """Write every fact, GPS included as NULL when not kept, so a rerun converges.

    Returns False when the image was deleted (nothing to write to)."""
    exif, gps = facts.exif, facts.exif.gps
    status = await conn.execute(
        """UPDATE images
              SET format = $2, width = $3, height = $4, mode = $5, frames = $6,
                  phash = $7, dhash = $8,
                  captured_at = $9, captured_offset = $10,
                  camera_make = $11, camera_model = $12, orientation = $13,
                  gps_latitude = $14, gps_longitude = $15, gps_altitude_m = $16,
                  updated_at = now()
            WHERE id = $1""",
        image_id,
        facts.format,
        facts.width,
        facts.height,
        facts.mode,
        facts.frames,
        facts.phash,
        facts.dhash,
        exif.captured_at,
        exif.captured_offset,
        exif.camera_make,
        exif.camera_model,
        exif.orientation,
        gps.latitude if gps else None,
        gps.longitude if gps else None,
        gps.altitude_m if gps else None,
    )
    return status != "UPDATE 0"
