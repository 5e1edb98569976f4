"""The images' background work: purging the trash past its retention."""

from __future__ import annotations

from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.images.trash import purge_trash


async def purge_expired_trash(res: Resources) -> None:
    await purge_trash(res)
