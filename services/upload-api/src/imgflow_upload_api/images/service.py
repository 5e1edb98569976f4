"""Deleting an image (DELETE /v1/images/{id}): its rows and every object of it, or nothing.

Ordering is what makes it safe against the two things running beside it:

- Workers. The image row is locked and deleted, then its objects are removed, then the
  transaction commits. A worker that records a result takes a share lock on the image
  row (renditions: see the thumbnailer's repository), so it either committed before
  this delete (its objects exist by then, and are removed here) or finds the image
  gone after it (and removes what it stored itself). Its job then ends as skipped.
- Uploads of the same bytes. Originals are content-addressed, so a new upload of them
  stores to the same key. The object is removed before the commit, while the row is
  still visible: an upload that sees no row (after the commit) stores its copy after
  this removal, and one that sees the row reuses it and learns it was deleted.

If S3 refuses, the transaction rolls back: the image is still there, whole, and the
client gets a 503 to retry.
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


def object_prefixes(image_id: UUID) -> list[str]:
    """Every key prefix that holds objects derived from one image (its original aside)."""
    return [rendition_prefix(image_id)]


def remove_objects(store: ObjectStore, original_key: str, image_id: UUID) -> None:
    store.delete(original_key)  # S3 answers success for a key that is already gone
    for prefix in object_prefixes(image_id):
        store.delete_prefix(prefix)


async def delete_image(res: Resources, tenant_id: UUID, image_id: UUID) -> bool:
    """Delete the image of this tenant; False when it has no such image."""
    async with res.pool.acquire() as conn, conn.transaction():
        original_key = await repository.lock_for_delete(conn, tenant_id, image_id)
        if original_key is None:
            return False
        await repository.delete_row(conn, image_id)
        try:
            await asyncio.to_thread(remove_objects, res.store, original_key, image_id)
        except Exception as exc:
            log.exception("could not delete the objects of image %s; keeping it", image_id)
            raise Problem(
                503,
                "storage-unavailable",
                "Storage unavailable",
                "the image's objects could not be deleted, so the image was kept; retry later",
                headers={"Retry-After": "5"},
            ) from exc
    log.info("deleted image %s (%s and its renditions)", image_id, original_key)
    return True
