"""Loop bodies that get jobs to the workers (scheduled by background.py)."""

from __future__ import annotations

import asyncio
import logging

import redis

from imgflow_runtime.db.sweeper import QueueHead, SweepPolicy, sweep
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.jobs.queue_heads import STAGE_QUEUES, read_queue_heads
from imgflow_upload_api.jobs.relay import BATCH

log = logging.getLogger(__name__)


async def relay_outbox(res: Resources) -> None:
    """Send every pending outbox row, a batch at a time, until none is left."""
    while await res.relay.relay() == BATCH:
        pass


async def sweep_stages(res: Resources) -> None:
    """Re-drive stages no worker finished in time; dead-letter those swept too often."""
    settings = res.settings
    policy = SweepPolicy(
        pending_after_s=settings.sweeper_pending_after_s,
        running_after_s=settings.sweeper_running_after_s,
        max_sweeps=settings.sweeper_max_sweeps,
    )
    heads: list[QueueHead] = []
    try:
        # The fair relay's express lane puts jobs ahead of up to 2 x the target depth
        # (relay.express_rooms), and moves a job left in an express queue to the head
        # (one more per express queue's depth): the oldest job in line is among that
        # many at the head. The express queues themselves hold only jobs seconds old.
        window = (
            2 * settings.outbox_broker_target_depth + settings.outbox_express_queue_depth
            if settings.outbox_scheduling == "fair"
            else 1
        )
        heads = await asyncio.to_thread(read_queue_heads, res.broker, STAGE_QUEUES, window)
    except redis.RedisError as exc:
        # Messages may be gone with the broker: judge by the deadline alone, as before.
        log.warning("sweeping without the queues' heads (broker unreadable: %s)", exc)
    async with res.pool.acquire() as conn:
        await sweep(conn, policy, heads)
