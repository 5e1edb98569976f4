"""The FastAPI application: wiring only; the work lives in the modules it imports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import asyncpg
import redis
from fastapi import FastAPI
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgflow_runtime.celery_app import make_producer_app
from imgflow_runtime.db import tenants
from imgflow_runtime.db.pool import create_pool
from imgflow_runtime.logs import configure_logging
from imgflow_runtime.storage import ObjectStore
from imgflow_runtime.telemetry import flush_tracing, setup_tracing
from imgflow_upload_api.admin import endpoints as admin
from imgflow_upload_api.auth import KeyCache
from imgflow_upload_api.background import start_loops, stop_loops
from imgflow_upload_api.dependencies import Resources
from imgflow_upload_api.duplicates import endpoints as duplicates
from imgflow_upload_api.events import endpoints as events
from imgflow_upload_api.events.hub import EventHub
from imgflow_upload_api.images import endpoints as images
from imgflow_upload_api.jobs.broker import BrokerPublisher
from imgflow_upload_api.jobs.relay import OutboxRelay, Scheduling
from imgflow_upload_api.openapi import install_contract, operation_id
from imgflow_upload_api.ops import endpoints as ops
from imgflow_upload_api.ops.loop_lag import LoopLag
from imgflow_upload_api.ops.metrics import ApiMetrics
from imgflow_upload_api.problems import Problem, install_problem_handlers
from imgflow_upload_api.settings import ApiSettings
from imgflow_upload_api.stacks import endpoints as stacks
from imgflow_upload_api.tenants import endpoints as usage
from imgflow_upload_api.tenants.admission import Admission
from imgflow_upload_api.tenants.light_first import LightWorkFirst
from imgflow_upload_api.tenants.service import tenant_defaults
from imgflow_upload_api.tenants.shared_state import SharedLimits
from imgflow_upload_api.uploads import endpoints as uploads
from imgflow_upload_api.uploads.backpressure import Backpressure
from imgflow_upload_api.uploads.presigned import endpoints as presigned
from imgflow_upload_api.uploads.s3_writer import S3Writer
from imgflow_upload_api.webhooks import endpoints as webhooks

log = logging.getLogger(__name__)


def create_app(settings: ApiSettings | None = None, *, configure_process: bool = True) -> FastAPI:
    """The app; nothing connects until its lifespan starts. ``configure_process=False``
    skips the process-wide logging and tracing setup (tools/openapi.py reads the spec)."""
    settings = settings or ApiSettings()
    if configure_process:
        configure_logging(settings.log_level)
        setup_tracing("imgflow-upload-api", settings.trace_dir)
        # No CeleryInstrumentor here: the relay puts each job's stored trace context in
        # its message headers itself (jobs/relay.py), which is all the workers need.
        AsyncPGInstrumentor().instrument()
    metrics = ApiMetrics()
    loop_lag = LoopLag(metrics.registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # No reset query per release (~0.3 ms of CPU each, two or more per upload): the
        # API's pooled connections hold no session state (transaction-level advisory
        # locks only; LISTEN has a connection of its own, events/hub.py).
        pool = await create_pool(
            settings.database_url, max_size=settings.database_pool_max, reset_session=False
        )
        store = ObjectStore.from_settings(settings)
        await asyncio.to_thread(store.ensure_bucket)
        s3_writer = S3Writer.from_settings(settings)
        # Celery builds the job messages; they are sent from the loop (jobs/broker.py).
        producer = make_producer_app(settings)
        publisher = BrokerPublisher.connect(producer, settings.broker_url)
        scheduling = Scheduling(
            settings.outbox_scheduling,
            settings.outbox_broker_target_depth,
            settings.outbox_relay_poll_s,
            settings.tenant_default_weight,
            settings.outbox_express_max_waiting,
            settings.outbox_express_queue_depth,
            settings.outbox_express_queue_wait_s,
        )
        light_first = LightWorkFirst(
            # Only with the fair relay: the FIFO relay has no express lane to say when a
            # light upload's jobs went, so each would hold a backlog back a while longer.
            settings.tenant_light_work_first and settings.outbox_scheduling == "fair",
            settings.tenant_light_work_share,
            settings.tenant_light_work_window_s,
            on_wait=metrics.uploads_yielded.inc,
            unsent_s=settings.outbox_relay_interval_s,
        )
        relay = OutboxRelay(
            pool,
            publisher,
            settings.outbox_relay_interval_s,
            scheduling,
            on_sent=metrics.outbox_relayed.inc,
            on_express_moved=lambda queue: metrics.express_moved.labels(queue).inc(),
            on_light_sent=light_first.light_sent,
        )
        broker = redis.Redis.from_url(
            settings.broker_url, socket_timeout=2, socket_connect_timeout=2
        )
        # The tenants' upload rate and uploads in progress, shared by the replicas.
        shared_limits = SharedLimits(settings.broker_url, settings.tenant_upload_lease_s)
        resources = Resources(
            settings,
            pool,
            store,
            s3_writer,
            broker,
            relay,
            metrics,
            Backpressure(settings.queue_breaking_depth),
            KeyCache(settings.api_key_cache_s),
            Admission(tenant_defaults(settings), settings.tenant_limits_cache_s, shared_limits),
            light_first,
        )
        await _bootstrap_key(pool, settings)
        # One LISTEN connection per process, shared by every event stream it serves.
        resources.event_hub = EventHub(
            settings.database_url,
            queue_size=settings.events_queue_size,
            retry_s=settings.events_listen_retry_s,
            health_check_s=settings.events_heartbeat_s,
            registry=metrics.registry,
        )
        resources.event_hub.on_key_revoked(resources.key_cache.forget)
        # A light image's end lets a backlog's waiting uploads go (tenants/light_first.py).
        resources.event_hub.on_image_ended(light_first.image_ended)
        await resources.event_hub.start()
        app.state.resources = resources
        loops = start_loops(resources)
        # Only measures: cancelled at once on shutdown, unlike the loops that do work.
        lag_probe = asyncio.create_task(loop_lag.run(), name="loop lag")
        log.info("imgflow API ready on %s:%d", settings.api_host, settings.api_port)
        try:
            yield
        finally:
            lag_probe.cancel()
            await stop_loops(loops)
            await resources.event_hub.stop()
            await pool.close()
            broker.close()
            await shared_limits.close()
            await publisher.close()
            await s3_writer.close()
            producer.close()
            if configure_process:
                # uvicorn ends by re-raising the SIGTERM it caught, which skips atexit
                # and with it the tracer's last batch: send it now.
                await asyncio.to_thread(flush_tracing)

    app = FastAPI(
        title="imgflow",
        version="1",
        summary="Image uploads answered in milliseconds, processed in the background.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    install_contract(app, settings)
    install_problem_handlers(app)
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"]
    )
    for domain in (
        uploads,
        presigned,
        images,
        duplicates,
        stacks,
        events,
        webhooks,
        usage,
        admin,
        ops,
    ):
        app.include_router(domain.router)

    app.add_middleware(ObserveRequests, metrics=metrics)
    return app


class ObserveRequests:
    """Count and time requests by route template, up to the response's start (as
    Starlette's ``@app.middleware("http")`` did). Plain ASGI: that decorator's
    BaseHTTPMiddleware costs a task and a memory stream per request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The router has put the matched route in the scope by now.
                path = getattr(scope.get("route"), "path", "unmatched")
                method = scope["method"]
                self.metrics.requests.labels(method, path, str(message["status"])).inc()
                self.metrics.latency.labels(method, path).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, observed)


async def _bootstrap_key(pool: asyncpg.Pool, settings: ApiSettings) -> None:
    """Make the configured development key valid (idempotent; every replica may do it)."""
    if settings.bootstrap_api_key is None:
        return
    key = settings.bootstrap_api_key.get_secret_value()
    async with pool.acquire() as conn:
        tenant = await tenants.ensure_key(conn, settings.bootstrap_tenant, key, "bootstrap")
    log.info("bootstrap API key %s… is valid for tenant %r", key[:9], tenant.name)


__all__ = ["Problem", "create_app"]
