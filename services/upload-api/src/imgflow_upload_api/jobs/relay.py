"""Relay outbox rows to the broker, then delete them.

Whoever commits jobs wakes the relay loop (background.py), which sends every pending row
in batches, and also runs every interval to retry whatever is still there (the broker was
down, or the API died in between).
Rows are locked with SKIP LOCKED, so any number of API replicas relay side by side
without sending a job twice. A job can still reach the broker twice if the process dies
between sending and deleting, or the broker's answer to a send is lost; the workers are
idempotent, so that costs only work.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import redis

from imgflow_upload_api.jobs import repository
from imgflow_upload_api.jobs.broker import BrokerPublisher, Job

log = logging.getLogger(__name__)

BATCH = 200


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, publisher: BrokerPublisher, interval_s: float) -> None:
        self.pool = pool
        self.publisher = publisher
        self.interval_s = interval_s
        # Set when jobs were committed: the relay loop (background.py) wakes at once and
        # sends every pending row in one pass, so a burst of uploads costs one transaction
        # and one broker round trip per batch rather than per upload.
        self.due = asyncio.Event()

    def soon(self) -> None:
        """Jobs were just committed to the outbox: relay them on the next pass, now."""
        self.due.set()

    async def relay(self) -> int:
        """Send up to a batch of pending outbox rows, oldest first; returns how many."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await repository.lock_batch(conn, BATCH)
            if not rows:
                return 0
            # The stored W3C context goes straight into the message headers, where the
            # workers' CeleryInstrumentor reads it: the upload's trace continues in the
            # worker without a publish span (about 2.5 ms of API CPU a job).
            jobs = [
                Job(row["task_name"], row["queue"], row["payload"], row["trace_context"] or {})
                for row in rows
            ]
            try:
                await self.publisher.publish(jobs)
            except (redis.RedisError, OSError) as exc:  # all or none: the batch waits
                error = f"{type(exc).__name__}: {exc}"
                await repository.record_failure(conn, [r["id"] for r in rows], error)
                log.warning(
                    "broker unreachable, %d job(s) wait in the outbox: %s", len(rows), error
                )
                return 0
            await repository.delete_sent(conn, [r["id"] for r in rows])
            return len(rows)

    async def pending(self) -> int:
        async with self.pool.acquire() as conn:
            return await repository.count_pending(conn)
