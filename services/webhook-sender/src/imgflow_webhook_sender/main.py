"""Run the webhook sender: one process, any number of replicas (they share the work
through row locks in PostgreSQL). SIGTERM lets attempts in flight end, briefly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import asyncpg
from aiohttp import web

from imgflow_runtime.db.pool import create_pool
from imgflow_runtime.logs import configure_logging
from imgflow_webhook_sender.health import health_app
from imgflow_webhook_sender.metrics import SenderMetrics
from imgflow_webhook_sender.sender import Sender
from imgflow_webhook_sender.settings import SenderSettings

log = logging.getLogger(__name__)

# Triggers NOTIFY this (empty) when a transaction queued deliveries (migration 0008).
DELIVERIES_CHANNEL = "webhook_deliveries"
APPLICATION_NAME = "imgflow-webhook-sender"


async def serve(settings: SenderSettings, stopping: asyncio.Event) -> None:
    pool = await create_pool(settings.database_url, max_size=settings.database_pool_max)
    metrics = SenderMetrics()
    sender = Sender(pool, settings, metrics)
    listener = await asyncpg.connect(
        settings.database_url, server_settings={"application_name": APPLICATION_NAME}
    )
    await listener.add_listener(DELIVERIES_CHANNEL, lambda *_: sender.wake())
    # Stale after a few missed passes: a pass waits at most the dispatch interval, and a
    # query at most the pool's command timeout.
    stale_s = 3 * settings.webhook_dispatch_interval_s + 30
    runner = web.AppRunner(health_app(metrics.registry, lambda: sender.last_pass_at, stale_s))
    await runner.setup()
    if settings.webhook_sender_port:
        await web.TCPSite(
            runner, settings.webhook_sender_host, settings.webhook_sender_port
        ).start()
    log.info(
        "webhook sender up: /healthz and /metrics on %s:%s",
        settings.webhook_sender_host,
        settings.webhook_sender_port,
    )

    async def wake_on_stop() -> None:
        await stopping.wait()
        sender.wake()

    waker = asyncio.create_task(wake_on_stop())
    try:
        await sender.run(stopping)
    finally:
        waker.cancel()
        await runner.cleanup()
        with contextlib.suppress(Exception):
            await listener.close()
        await pool.close()


def main() -> None:
    settings = SenderSettings()
    configure_logging(settings.log_level)

    async def run() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await serve(settings, stopping)

    asyncio.run(run())
