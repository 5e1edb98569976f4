"""Deleting an image (DELETE /v1/images/{id}): its rows and every object of it, in three
steps, none holding a transaction open across S3 calls:

1. Mark it (``deleting_since``, committed). From then on clients get 404 and workers
   treat it as gone. The mark waits for workers recording results (they key-share lock
   the row): those that committed before it have stored their objects, which step 2
   removes; those after it find the image gone and remove what they stored themselves.
2. Remove its objects from S3 (idempotent).
3. Delete the rows.

If S3 or PostgreSQL fails after step 1, the client gets a 503 and the image stays marked:
hidden, never half-visible. The deletion finishes when the client retries, or by itself
(``finish_deletions``, run by the API's sweeper after
IMGFLOW_IMAGE_DELETE_FINISH_AFTER_S), so nothing stays half-deleted.

Uploads of the same bytes: originals are content-addressed, so a new upload stores to
the same key. The row stays until its original is removed: an upload that sees the row
reuses it (and learns it was deleted), and one that sees none (after step 3) stores its
copy after the removal.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from imgflow_contracts.keys import rendition_prefix
from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.images import repository
from imgflow_upload_api.problems import Problem

log = logging.getLogger(__name__)

FINISH_BATCH = 50


def object_prefixes(image_id: UUID) -> list[str]:
    """Every key prefix that holds objects derived from one image (its original aside)."""
    return [rendition_prefix(image_id)]


def remove_objects(store: ObjectStore, original_key: str, image_id: UUID) -> None:
    # Derived objects first, the original last: while it exists the delete is plainly
    # unfinished. S3 answers success for a key that is already gone.
    for prefix in object_prefixes(image_id):
        store.delete_prefix(prefix)
    store.delete(original_key)


async def delete_image(res: Resources, tenant_id: UUID, image_id: UUID) -> bool:
    """Delete the image of this tenant; False when it has no such image."""
    async with res.pool.acquire() as conn:
        original_key = await repository.mark_deleting(conn, tenant_id, image_id)
    if original_key is None:
        return False
    await _finish(res, image_id, original_key)
    log.info("deleted image %s (%s and its renditions)", image_id, original_key)
    return True


async def _finish(res: Resources, image_id: UUID, original_key: str) -> None:
    """Steps 2 and 3 of a marked image's delete."""
    try:
        await asyncio.to_thread(remove_objects, res.store, original_key, image_id)
    except Exception as exc:
        log.exception("could not delete the objects of image %s; will finish later", image_id)
        raise Problem(
            503,
            "storage-unavailable",
            "Storage unavailable",
            "the image's objects could not all be deleted yet; the image is hidden and "
            "its deletion finishes by itself, or when you retry",
            headers={"Retry-After": "5"},
        ) from exc
    async with res.pool.acquire() as conn:
        await repository.delete_marked(conn, image_id)


async def finish_deletions(res: Resources, older_than_s: float) -> int:
    """Finish the deletes marked more than ``older_than_s`` ago (cut short by S3 or
    PostgreSQL); how many were finished."""
    async with res.pool.acquire() as conn:
        unfinished = await repository.unfinished_deletions(conn, older_than_s, FINISH_BATCH)
    finished = 0
    for row in unfinished:
        try:
            await _finish(res, row["id"], row["object_key"])
        except Problem:
            break  # S3 still refuses: the next pass tries again
        finished += 1
        log.info("finished the interrupted delete of image %s", row["id"])
    return finished
