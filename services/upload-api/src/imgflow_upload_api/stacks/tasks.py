"""Loop bodies of the similar stacks (scheduled by background.py)."""

from __future__ import annotations

import logging

from imgflow_runtime.db.similar_stacks import restack_dirty
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.stacks.repository import PRUNE_BATCH, prune_resolutions

log = logging.getLogger(__name__)
# Stacks restacked per pass: each is one transaction over its component (bounded).
RESTACK_BATCH = 50


async def restack_flagged(res: Resources) -> None:
    """Restack the stacks a trash or a delete flagged, by the deduper's own rule."""
    async with res.pool.acquire() as conn:
        while (done := await restack_dirty(conn, RESTACK_BATCH)) >= RESTACK_BATCH:
            log.info("restacked %d flagged similar stack(s); more to do", done)


async def forget_resolutions(res: Resources) -> None:
    """Forget stored resolve answers past IMGFLOW_RESOLUTION_RETENTION_DAYS."""
    async with res.pool.acquire() as conn:
        while await prune_resolutions(conn, res.settings.resolution_retention_days) >= PRUNE_BATCH:
            pass
