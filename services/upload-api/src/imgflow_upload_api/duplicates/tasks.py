"""Loop bodies of the duplicate groups (scheduled by background.py)."""

from __future__ import annotations

import logging

from imgflow_runtime.db.similar_stacks import regroup_and_restack_dirty
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.duplicates.repository import PRUNE_BATCH, prune_resolutions

log = logging.getLogger(__name__)
# Groups regrouped per pass: each is one transaction over its component (bounded).
REGROUP_BATCH = 50


async def regroup_flagged(res: Resources) -> None:
    """Regroup the groups a trash or a delete flagged, by the deduper's own rule
    (imgflow_runtime.grouping), so they are right without waiting for another upload; their
    similar stacks are restacked in the same transaction (a stack holds whole groups)."""
    async with res.pool.acquire() as conn:
        while (done := await regroup_and_restack_dirty(conn, REGROUP_BATCH)) >= REGROUP_BATCH:
            log.info("regrouped %d flagged duplicate group(s); more to do", done)


async def forget_resolutions(res: Resources) -> None:
    """Forget stored resolve answers past IMGFLOW_RESOLUTION_RETENTION_DAYS."""
    async with res.pool.acquire() as conn:
        while await prune_resolutions(conn, res.settings.resolution_retention_days) >= PRUNE_BATCH:
            pass
