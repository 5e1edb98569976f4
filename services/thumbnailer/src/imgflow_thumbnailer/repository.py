"""The thumbnailer's writes: one row per rendition, upserted so reruns converge."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from imgflow_thumbnailer.rendering import Rendition


async def upsert_renditions(
    conn: asyncpg.Connection, image_id: UUID, rows: list[tuple[Rendition, str]]
) -> bool:
    """Record the renditions; False (and nothing written) when the image was deleted or
    is being deleted.

    The image row is share-locked first, so a delete's mark either waits for this
    transaction (and the delete then removes these rows and objects with the image) or
    has already committed (and the caller removes the objects it stored).
    """
    async with conn.transaction():
        exists = await conn.fetchval(
            "SELECT deleting_since IS NULL FROM images WHERE id = $1 FOR KEY SHARE", image_id
        )
        if not exists:
            return False
        await conn.executemany(
            """INSERT INTO renditions
                      (image_id, size, object_key, format, width, height, byte_size)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (image_id, size) DO UPDATE
                  SET object_key = EXCLUDED.object_key, format = EXCLUDED.format,
                      width = EXCLUDED.width, height = EXCLUDED.height,
                      byte_size = EXCLUDED.byte_size""",
            [
                (image_id, r.size, key, r.format.value, r.width, r.height, len(r.data))
                for r, key in rows
            ],
        )
    return True
