"""Loop bodies of the images (scheduled by background.py)."""

from __future__ import annotations

from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.images.service import finish_deletions
from imgflow_upload_api.images.trash import purge_trash


async def finish_interrupted_deletes(res: Resources) -> None:
    """Finish the deletes that S3 or PostgreSQL cut short (images still marked)."""
    await finish_deletions(res, res.settings.image_delete_finish_after_s)


async def purge_expired_trash(res: Resources) -> None:
    """Delete, rows and objects, the trashed images past IMGFLOW_TRASH_RETENTION_DAYS."""
    await purge_trash(res)
