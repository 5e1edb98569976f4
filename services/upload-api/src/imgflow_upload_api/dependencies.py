"""What routes depend on: the process-wide resources built once in the lifespan, the
store that signs URLs for clients, and the parsing of ids in paths."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import redis
from fastapi import Request

from imgflow_contracts.queues import Stage
from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.auth import KeyCache
from imgflow_upload_api.events.hub import EventHub
from imgflow_upload_api.jobs.relay import OutboxRelay
from imgflow_upload_api.ops.metrics import ApiMetrics
from imgflow_upload_api.problems import Problem
from imgflow_upload_api.settings import ApiSettings
from imgflow_upload_api.tenants.admission import Admission
from imgflow_upload_api.tenants.light_first import LightWorkFirst
from imgflow_upload_api.uploads.backpressure import Backpressure
from imgflow_upload_api.uploads.s3_writer import S3Writer


@dataclass
class Resources:
    settings: ApiSettings
    pool: asyncpg.Pool
    store: ObjectStore
    s3_writer: S3Writer  # the upload path's PUT, on the event loop
    broker: redis.Redis
    relay: OutboxRelay
    metrics: ApiMetrics
    backpressure: Backpressure
    key_cache: KeyCache
    admission: Admission  # per-tenant limits (tenants/)
    light_first: LightWorkFirst  # a backlog's uploads yield to light tenants' work
    event_hub: EventHub | None = None  # set once its LISTEN task runs (app.py)
    # jobs waiting in the outbox per tenant and kind, as last read (uploads/tasks.py)
    queued_by_tenant_kind: dict[UUID, dict[str, int]] = field(default_factory=dict)

    async def queue_depths(self) -> dict[str, int]:
        # Each stage's queue and its express queue (fair scheduling's reserved slot).
        queues = [q for stage in Stage for q in (stage.queue, stage.express_queue)]

        def read() -> dict[str, int]:
            # Celery's Redis transport keeps each queue as a list named after it.
            with self.broker.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.llen(queue)
                depths = pipe.execute()
            return {queue: int(n) for queue, n in zip(queues, depths, strict=True)}

        return await asyncio.to_thread(read)


def resources(request: Request) -> Resources:
    return request.app.state.resources  # type: ignore[no-any-return]


def parse_id(raw: str, not_found: Callable[[str], Problem]) -> UUID:
    """An id in a path that is not a UUID names nothing: the same 404 as an unknown id."""
    try:
        return UUID(raw)
    except ValueError as exc:
        raise not_found(repr(raw)) from exc


def presigner(request: Request) -> ObjectStore:
    """The store that signs URLs for clients: presigned uploads and download redirects.

    A presigned URL is signed for its Host, so it must name the S3 endpoint clients reach
    (IMGFLOW_S3_PUBLIC_ENDPOINT), which need not be the one this process uses. Signing is
    local (HMAC, the region is configured), so this store never connects anywhere. Built
    once per app, on first use.
    """
    res = resources(request)
    endpoint = res.settings.s3_public_endpoint
    if endpoint is None:
        return res.store
    store: ObjectStore | None = getattr(request.app.state, "presigner", None)
    if store is None:
        store = ObjectStore.for_presigning(res.settings, endpoint)
        request.app.state.presigner = store
    return store
