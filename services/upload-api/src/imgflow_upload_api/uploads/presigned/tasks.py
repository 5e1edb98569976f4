"""The expiry pass of presigned uploads (scheduled by background.py).

Once an upload's URLs have expired nothing more can be sent, so whatever is staged under
its key (an object, an unfinished multipart upload's parts) is removed, whatever its
state: a completed upload's URL may have been used again after completion. Pending
uploads become ``expired``; rows are forgotten ``retention_s`` after that.
"""

from __future__ import annotations

import logging

from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.uploads.presigned.repository import (
    due_for_cleaning,
    forget_cleaned,
    mark_cleaned,
)
from imgflow_upload_api.uploads.presigned.service import discard_staged

log = logging.getLogger(__name__)

_BATCH = 100


async def clean_expired_uploads(res: Resources, retention_s: float) -> int:
    """One pass; returns how many uploads were cleaned. Replicas may overlap: every
    step is idempotent."""
    async with res.pool.acquire() as conn:
        due = await due_for_cleaning(conn, _BATCH)
    cleaned = 0
    for upload in due:
        try:
            await discard_staged(res.store, upload)
        except Exception:  # left for the next pass; the others go ahead
            log.exception("could not remove the staged bytes of upload %s", upload.id)
            continue
        async with res.pool.acquire() as conn:
            await mark_cleaned(conn, upload.id)
        cleaned += 1
    async with res.pool.acquire() as conn:
        await forget_cleaned(conn, retention_s)
    if cleaned:
        log.info("cleaned %d expired presigned uploads", cleaned)
    return cleaned


async def clean_presigned_uploads(res: Resources) -> None:
    # A completion is answered again as long as an Idempotency-Key is: keep rows that long.
    await clean_expired_uploads(res, retention_s=res.settings.idempotency_ttl_s)
