"""Loop bodies of the upload path (scheduled by background.py)."""

from __future__ import annotations

import contextlib

from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.uploads.repository import forget_expired_keys


async def forget_idempotency_keys(res: Resources) -> None:
    async with res.pool.acquire() as conn:
        await forget_expired_keys(conn, res.settings.idempotency_ttl_s)


async def read_queue_depths(res: Resources) -> None:
    """Refresh what backpressure admits uploads by, so an upload never waits on Redis."""
    queues: dict[str, int] | None = None
    with contextlib.suppress(Exception):  # broker down: depths unknown, outbox still counts
        queues = await res.queue_depths()
    res.backpressure.update(queues, await res.relay.pending())
