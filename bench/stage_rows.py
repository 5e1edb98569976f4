"""The stage rows of the uploaded images, read from PostgreSQL after the run.

``queued_at`` is written with the upload, ``started_at`` when a worker claims the stage and
``finished_at`` when it is done: so queue wait = started - queued, run = finished - started,
exactly, per image, whatever the sampling interval. (``started_at`` is that of the last
attempt: a retried stage's wait includes its earlier attempts and backoff.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

_QUERY = """
SELECT s.stage, s.status, s.attempts, s.error,
       extract(epoch FROM s.queued_at)::float8 AS queued,
       extract(epoch FROM s.started_at)::float8 AS started,
       extract(epoch FROM s.finished_at)::float8 AS finished
  FROM image_stages AS s
 WHERE s.image_id = ANY($1::uuid[])
"""


@dataclass(frozen=True)
class StageRow:
    """Times in seconds after the first upload started (same clock: this machine's)."""

    stage: str
    status: str
    attempts: int
    error: str | None
    queued_s: float
    started_s: float | None
    finished_s: float | None

    @property
    def wait_s(self) -> float | None:
        return None if self.started_s is None else self.started_s - self.queued_s

    @property
    def run_s(self) -> float | None:
        if self.started_s is None or self.finished_s is None:
            return None
        return self.finished_s - self.started_s


async def read_stage_rows(
    database_url: str, image_ids: Sequence[str], t0_epoch: float
) -> list[StageRow]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(_QUERY, list(image_ids))
    finally:
        await conn.close()

    def rel(value: float | None) -> float | None:
        return None if value is None else value - t0_epoch

    return [
        StageRow(
            stage=r["stage"],
            status=r["status"],
            attempts=r["attempts"],
            error=r["error"],
            queued_s=r["queued"] - t0_epoch,
            started_s=rel(r["started"]),
            finished_s=rel(r["finished"]),
        )
        for r in rows
    ]
