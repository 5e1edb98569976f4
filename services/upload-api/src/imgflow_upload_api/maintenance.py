"""The API's background loops: relay the outbox, sweep stuck stages, read queue depths,
send webhook deliveries, forget old events.

They run in every API replica; the outbox rows and the sweep are locked in PostgreSQL,
so replicas share the work instead of repeating it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from imgflow_runtime.db.sweeper import SweepPolicy, sweep
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.event_retention import BATCH as PRUNE_BATCH
from imgflow_upload_api.event_retention import prune
from imgflow_upload_api.idempotency import forget_expired
from imgflow_upload_api.outbox import BATCH
from imgflow_upload_api.upload_cleaner import clean_expired_uploads
from imgflow_upload_api.webhook_dispatch import WebhookDispatcher

log = logging.getLogger(__name__)

# Within the API's drain (20 s): a pass is one batch of sends or one sweep, far quicker.
STOP_GRACE_S = 5.0
EVENT_PRUNE_INTERVAL_S = 60.0


async def every(
    interval_s: float,
    name: str,
    step: Callable[[], Awaitable[object]],
    stopping: asyncio.Event,
    wake: asyncio.Event | None = None,
) -> None:
    """Run ``step`` every ``interval_s`` until ``stopping`` is set; a failing pass is
    logged, not fatal. A pass under way when ``stopping`` is set runs to its end. Setting
    ``wake`` starts the next pass at once (whoever sets ``stopping`` must set it too)."""
    wait_on = wake or stopping
    while not stopping.is_set():
        if wake is not None:
            wake.clear()
        try:
            await step()
        except Exception:
            log.exception("%s pass failed", name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wait_on.wait(), interval_s)


@dataclass
class Loops:
    tasks: list[asyncio.Task[None]]
    stopping: asyncio.Event
    # loops that wait on their own event rather than on ``stopping``
    wake_on_stop: list[Callable[[], None]] = field(default_factory=list)


def start_loops(res: Resources) -> Loops:
    settings = res.settings
    stopping = asyncio.Event()
    policy = SweepPolicy(
        pending_after_s=settings.sweeper_pending_after_s,
        running_after_s=settings.sweeper_running_after_s,
        max_sweeps=settings.sweeper_max_sweeps,
    )

    async def relay_all() -> None:
        while await res.relay.relay() == BATCH:
            pass

    async def sweep_once() -> None:
        async with res.pool.acquire() as conn:
            await sweep(conn, policy)
            await forget_expired(conn, settings.idempotency_ttl_s)
        # Presigned uploads: a completion is answered again as long as an Idempotency-Key is.
        await clean_expired_uploads(res, retention_s=settings.idempotency_ttl_s)

    async def read_depths() -> None:
        queues: dict[str, int] | None = None
        with contextlib.suppress(Exception):  # broker down: depths unknown, outbox still counts
            queues = await res.queue_depths()
        res.backpressure.update(queues, await res.relay.pending())

    async def prune_events() -> None:
        async with res.pool.acquire() as conn:
            retention = (settings.events_retention_s, settings.webhook_delivery_retention_s)
            while await prune(conn, *retention) >= PRUNE_BATCH:
                pass

    loops = {
        "sweeper": (settings.sweeper_interval_s, sweep_once),
        "queue depths": (settings.queue_depth_refresh_s, read_depths),
        "event retention": (EVENT_PRUNE_INTERVAL_S, prune_events),
    }
    # Woken by every commit of jobs (OutboxRelay.soon), so bursts are sent in batches.
    relay = every(
        settings.outbox_relay_interval_s, "outbox relay", relay_all, stopping, res.relay.due
    )
    tasks = [asyncio.create_task(relay, name="outbox relay")]
    tasks += [
        asyncio.create_task(every(interval, name, step, stopping), name=name)
        for name, (interval, step) in loops.items()
    ]
    # Webhooks: polled every IMGFLOW_WEBHOOK_DISPATCH_INTERVAL_S, and woken at once when
    # a transaction queues deliveries (and when the loops stop).
    dispatcher = WebhookDispatcher(res.pool, settings, res.metrics.registry)
    if res.event_hub is not None:
        res.event_hub.on_deliveries(dispatcher.wake)
    tasks.append(asyncio.create_task(dispatcher.run(stopping), name="webhook dispatch"))
    return Loops(tasks, stopping, wake_on_stop=[dispatcher.wake, res.relay.soon])


async def stop_loops(loops: Loops, grace_s: float = STOP_GRACE_S) -> None:
    """Let passes under way finish (a relay cut short would send its batch again from
    the next replica), then cancel whatever is still running after ``grace_s``."""
    loops.stopping.set()
    for wake in loops.wake_on_stop:
        wake()
    _, late = await asyncio.wait(loops.tasks, timeout=grace_s)
    for task in late:
        log.warning("%s pass still running at shutdown; cancelled", task.get_name())
        task.cancel()
    await asyncio.gather(*loops.tasks, return_exceptions=True)
