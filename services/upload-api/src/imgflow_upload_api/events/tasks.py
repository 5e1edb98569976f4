"""Loop bodies of the events (scheduled by background.py)."""

from __future__ import annotations

from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.events.repository import BATCH, prune


async def prune_events(res: Resources) -> None:
    """Forget events and finished webhook deliveries past their retention."""
    settings = res.settings
    async with res.pool.acquire() as conn:
        retention = (settings.events_retention_s, settings.webhook_delivery_retention_s)
        while await prune(conn, *retention) >= BATCH:
            pass
