"""The trash: resolving a duplicate group trashes copies (duplicates/resolution.py).

A trashed image is out of the listing and of every group at once, and keeps its rows and
objects: POST /v1/images/{id}/restore brings it back whole, and its duplicate check runs
again (through the outbox) so it rejoins its group. After IMGFLOW_TRASH_RETENTION_DAYS the
API's background loop purges it as DELETE /v1/images/{id} would (images/tasks.py).
"""

from __future__ import annotations

import contextlib
import logging
from uuid import UUID

from imgflow_contracts.queues import Stage
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.images import repository
from imgflow_upload_api.images.service import delete_image

log = logging.getLogger(__name__)
PURGE_BATCH = 100


async def restore(res: Resources, tenant_id: UUID, image_id: UUID) -> bool:
    """Restore the tenant's image (a no-op if not trashed); False for no such image."""
    async with res.pool.acquire() as conn:
        was_trashed = await repository.restore(conn, tenant_id, image_id)
        if was_trashed is None:
            return False
        if was_trashed:
            # a check running now regroups it when it ends
            with contextlib.suppress(repository.StageRunning):
                await repository.reset_stages(conn, tenant_id, image_id, [Stage.DEDUPE])
    if was_trashed:
        res.relay.soon()
    return True


async def purge_trash(res: Resources) -> int:
    """Delete one batch of the trash past its retention; returns how many went."""
    async with res.pool.acquire() as conn:
        due = await repository.trash_due(conn, res.settings.trash_retention_days, PURGE_BATCH)
    purged = 0
    for row in due:
        if await delete_image(res, row["tenant_id"], row["id"]):
            purged += 1
    if purged:
        log.info("purged %d trashed image(s)", purged)
    return purged
