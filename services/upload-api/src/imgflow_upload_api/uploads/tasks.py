"""Loop bodies of the upload path (scheduled by background.py)."""

from __future__ import annotations

import contextlib

from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.jobs.repository import pending_by_tenant
from imgflow_upload_api.uploads.repository import forget_expired_keys


async def forget_idempotency_keys(res: Resources) -> None:
    async with res.pool.acquire() as conn:
        await forget_expired_keys(conn, res.settings.idempotency_ttl_s)


async def read_queue_depths(res: Resources) -> None:
    """Refresh what backpressure admits uploads by, so an upload never waits on Redis."""
    queues: dict[str, int] | None = None
    with contextlib.suppress(Exception):  # broker down: depths unknown, outbox still counts
        queues = await res.queue_depths()
    async with res.pool.acquire() as conn:
        by_tenant = await pending_by_tenant(conn)
    queued = {tenant: sum(kinds.values()) for tenant, kinds in by_tenant.items()}
    res.backpressure.update(queues, sum(queued.values()), queued)
    res.queued_by_tenant_kind = by_tenant
