"""The thumbnailer's writes: one row per rendition, upserted so reruns converge."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from imgflow_thumbnailer.rendering import Rendition

# One statement, so one round trip where BEGIN, the lock, the insert and COMMIT took four:
# the image row is share-locked (FOR KEY SHARE) in the statement's own transaction before
# any rendition is written, and none is when it is gone or being deleted.
_UPSERT = """
WITH image AS (
    SELECT id FROM images WHERE id = $1 AND deleting_since IS NULL FOR KEY SHARE
), written AS (
    INSERT INTO renditions (image_id, size, object_key, format, width, height, byte_size)
    SELECT image.id, r.size, r.object_key, r.format, r.width, r.height, r.byte_size
      FROM image, unnest($2::int[], $3::text[], $4::text[], $5::int[], $6::int[], $7::bigint[])
           AS r(size, object_key, format, width, height, byte_size)
    ON CONFLICT (image_id, size) DO UPDATE
       SET object_key = EXCLUDED.object_key, format = EXCLUDED.format,
           width = EXCLUDED.width, height = EXCLUDED.height, byte_size = EXCLUDED.byte_size
)
SELECT EXISTS (SELECT 1 FROM image)
"""


async def upsert_renditions(
    conn: asyncpg.Connection, image_id: UUID, rows: list[tuple[Rendition, str]]
) -> bool:
    """Record the renditions; False (and nothing written) when the image was deleted or
    is being deleted.

    The image row is share-locked first, so a delete's mark either waits for this
    statement (and the delete then removes these rows and objects with the image) or
    has already committed (and the caller removes the objects it stored).
    """
    return bool(
        await conn.fetchval(
            _UPSERT,
            image_id,
            [r.size for r, _ in rows],
            [key for _, key in rows],
            [r.format.value for r, _ in rows],
            [r.width for r, _ in rows],
            [r.height for r, _ in rows],
            [len(r.data) for r, _ in rows],
        )
    )
