"""The one runner of the API's background work. Each loop body lives in its domain's
``tasks.py``; this module only schedules them, wakes them and stops them. (Webhook
deliveries are sent by their own deployable, services/webhook-sender: never from here.)

They run in every API replica; the outbox rows and the sweep are locked in PostgreSQL,
so replicas share the work instead of repeating it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

from imgflow_upload_api.admin.tasks import drive_reprocess
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.duplicates.tasks import forget_resolutions, regroup_flagged
from imgflow_upload_api.events.tasks import prune_events
from imgflow_upload_api.images.tasks import finish_interrupted_deletes, purge_expired_trash
from imgflow_upload_api.jobs.tasks import relay_outbox, sweep_stages
from imgflow_upload_api.stacks import tasks as stack_tasks
from imgflow_upload_api.uploads.presigned.tasks import clean_presigned_uploads
from imgflow_upload_api.uploads.tasks import forget_idempotency_keys, read_queue_depths

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

    async def sweep_once() -> None:
        # One pass, in this order, as the sweeper always ran: stages first.
        await sweep_stages(res)
        await forget_idempotency_keys(res)
        await clean_presigned_uploads(res)
        await finish_interrupted_deletes(res)
        await forget_resolutions(res)
        await stack_tasks.forget_resolutions(res)

    loops = {
        "sweeper": (settings.sweeper_interval_s, sweep_once),
        "queue depths": (settings.queue_depth_refresh_s, partial(read_queue_depths, res)),
        "event retention": (EVENT_PRUNE_INTERVAL_S, partial(prune_events, res)),
        # Bulk reprocess: a batch per pass; replicas share a run through row locks.
        "reprocess runs": (settings.reprocess_interval_s, partial(drive_reprocess, res)),
        # as often as stuck stages are looked for: cheap (an index on trashed_at)
        "trash purge": (settings.sweeper_interval_s, partial(purge_expired_trash, res)),
        # groups a trash or delete flagged: the partial index on dirty keeps a pass cheap
        "regroup": (settings.regroup_interval_s, partial(regroup_flagged, res)),
        # stacks a trash or delete flagged, at the groups' pace (a partial index too)
        "restack": (settings.regroup_interval_s, partial(stack_tasks.restack_flagged, res)),
    }
    # Woken by every commit of jobs (OutboxRelay.soon), so bursts are sent in batches.
    relay_all = partial(relay_outbox, res)
    relay = every(
        settings.outbox_relay_interval_s, "outbox relay", relay_all, stopping, res.relay.due
    )
    tasks = [asyncio.create_task(relay, name="outbox relay")]
    tasks += [
        asyncio.create_task(every(interval, name, step, stopping), name=name)
        for name, (interval, step) in loops.items()
    ]
    return Loops(tasks, stopping, wake_on_stop=[res.relay.soon])


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
