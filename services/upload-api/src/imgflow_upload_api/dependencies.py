"""Process-wide resources of the API, built once in the lifespan and shared by routes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import redis
from celery import Celery

from imgflow_contracts.queues import Stage
from imgflow_runtime.storage import ObjectStore
from imgflow_upload_api.auth import KeyCache
from imgflow_upload_api.backpressure import Backpressure
from imgflow_upload_api.event_hub import EventHub
from imgflow_upload_api.metrics import ApiMetrics
from imgflow_upload_api.outbox import OutboxRelay
from imgflow_upload_api.settings import ApiSettings


@dataclass
class Resources:
    settings: ApiSettings
    pool: asyncpg.Pool
    store: ObjectStore
    producer: Celery
    broker: redis.Redis
    relay: OutboxRelay
    metrics: ApiMetrics
    backpressure: Backpressure
    key_cache: KeyCache
    event_hub: EventHub | None = None  # set once its LISTEN task runs (app.py)

    async def queue_depths(self) -> dict[str, int]:
        def read() -> dict[str, int]:
            # Celery's Redis transport keeps each queue as a list named after it.
            with self.broker.pipeline(transaction=False) as pipe:
                for stage in Stage:
                    pipe.llen(stage.queue)
                depths = pipe.execute()
            return {stage.queue: int(n) for stage, n in zip(Stage, depths, strict=True)}

        return await asyncio.to_thread(read)
