"""The hasher's reads and writes on the image row."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from imgflow_hasher.analysis import ImageFacts


async def expected_sha256(conn: asyncpg.Connection, image_id: UUID) -> str | None:
    return await conn.fetchval("SELECT sha256 FROM images WHERE id = $1", image_id)


async def record_facts(conn: asyncpg.Connection, image_id: UUID, facts: ImageFacts) -> None:
    await conn.execute(
        """UPDATE images SET format = $2, width = $3, height = $4, updated_at = now()
            WHERE id = $1""",
        image_id,
        facts.format,
        facts.width,
        facts.height,
    )
