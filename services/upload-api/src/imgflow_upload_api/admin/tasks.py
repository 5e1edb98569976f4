"""Loop body of bulk reprocess runs (scheduled by background.py, in every replica)."""

from __future__ import annotations

from imgflow_runtime.db import reprocess_runs
from imgflow_runtime.telemetry import current_context_carrier
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.jobs import repository as outbox_rows


def pause_depth(res: Resources) -> int:
    configured = res.settings.reprocess_pause_depth
    return configured or max(1, res.settings.queue_breaking_depth // 2)


async def drive_reprocess(res: Resources) -> None:
    """One batch of the oldest unfinished run, unless the system is busy: then running
    runs are marked paused, and the next pass below the depth resumes them."""
    async with res.pool.acquire() as conn:
        if not await reprocess_runs.any_active(conn):
            return
        limit = pause_depth(res)
        # Queue depths as last read (every IMGFLOW_QUEUE_DEPTH_REFRESH_S); the outbox now,
        # since the batches themselves fill it first.
        depths = {**res.backpressure.queue_depths, "outbox": await outbox_rows.count_pending(conn)}
        over = {name: n for name, n in depths.items() if n > limit}
        if over:
            listed = ", ".join(f"{k}: {v}" for k, v in sorted(over.items()))
            await reprocess_runs.pause_running(conn, f"backpressure ({listed}; limit {limit})")
            return
        run = await reprocess_runs.drive_batch(conn, current_context_carrier())
    if run is not None:
        res.relay.soon()
