"""Loop bodies that get jobs to the workers (scheduled by background.py)."""

from __future__ import annotations

from imgflow_runtime.db.sweeper import SweepPolicy, sweep
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.jobs.relay import BATCH


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
    async with res.pool.acquire() as conn:
        await sweep(conn, policy)
