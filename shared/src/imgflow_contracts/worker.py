"""The glue every worker shares: turn a domain handler into an idempotent Celery task.

A handler is a plain function ``handler(job, context)``; this module claims the stage,
runs it, records done or failed in PostgreSQL, and retries transient errors with
exponential backoff and jitter. Handlers raise ``PermanentError`` for input that can
never succeed (a corrupt image) so it is failed at once, without retries.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from celery import Celery, Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from pydantic import ValidationError

from imgflow_contracts.aio import ProcessLoop
from imgflow_contracts.db import stages
from imgflow_contracts.db.pool import create_pool
from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage
from imgflow_contracts.settings import WorkerSettings
from imgflow_contracts.storage import ObjectStore
from imgflow_contracts.telemetry import mark_image
from imgflow_contracts.worker_metrics import QUEUE_WAIT, TASK_DURATION, TASKS

log = logging.getLogger(__name__)
T = TypeVar("T")


class PermanentError(Exception):
    """The job can never succeed as given; fail the stage now with this reason."""


@dataclass
class WorkerContext:
    """Per-process resources a handler uses: the object store and PostgreSQL."""

    settings: WorkerSettings
    store: ObjectStore
    loop: ProcessLoop = field(default_factory=ProcessLoop)
    _pool: asyncpg.Pool | None = None
    _pool_pid: int = 0

    def db(self, query: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``query(conn, *args)`` on a pooled connection and return its result."""

        async def run() -> T:
            async with (await self._get_pool()).acquire() as conn:
                return await query(conn, *args)

        return self.loop.run(run())

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = await create_pool(self.settings.database_url, max_size=2)
            self._pool_pid = os.getpid()
        return self._pool


Handler = Callable[[ImageJob, WorkerContext], None]


def retry_delay_s(retries: int, *, base: float = 1.0, cap: float = 120.0) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's recommendation)."""
    return random.uniform(0, min(cap, base * 2**retries))


def register_stage_task(
    app: Celery, stage: Stage, handler: Handler, settings: WorkerSettings | None = None
) -> Task:
    settings = settings or WorkerSettings()
    context: WorkerContext | None = None

    def get_context() -> WorkerContext:
        nonlocal context
        if context is None:
            context = WorkerContext(settings, ObjectStore.from_settings(settings))
        return context

    @app.task(name=stage.task_name, bind=True, max_retries=settings.task_max_retries)
    def run_stage(self: Task, **message: Any) -> None:
        try:
            job = ImageJob.model_validate(message)
        except ValidationError as exc:
            # A malformed message will never validate: drop it loudly, never retry it.
            log.error("rejecting malformed %s message %r: %s", stage, message, exc)
            raise Reject(str(exc), requeue=False) from exc
        if job.stage is not stage:
            log.error("rejecting %s job delivered to the %s worker", job.stage, stage)
            raise Reject("wrong queue", requeue=False)

        mark_image(job.image_id)
        ctx = get_context()
        claim = ctx.db(stages.mark_running, job.image_id, stage)
        if isinstance(claim, stages.Skip):
            log.info("skipping %s for %s: %s", stage, job.image_id, claim.value)
            TASKS.labels(stage, "skipped").inc()
            return
        QUEUE_WAIT.labels(stage).observe((claim.started_at - claim.queued_at).total_seconds())
        started = time.perf_counter()
        try:
            outcome = _run_attempt(self, job, ctx, claim)
        finally:
            TASK_DURATION.labels(stage).observe(time.perf_counter() - started)
        TASKS.labels(stage, outcome).inc()
        log.info(
            "%s %s for %s in %.0f ms",
            stage,
            outcome,
            job.image_id,
            (time.perf_counter() - started) * 1000,
        )

    def _run_attempt(
        task: Task, job: ImageJob, ctx: WorkerContext, claim: stages.StageClaim
    ) -> str:
        """Run the handler once; returns the outcome, or raises Celery's Retry."""
        try:
            handler(job, ctx)
        except PermanentError as exc:
            log.warning("%s failed for %s: %s", stage, job.image_id, exc)
            ctx.db(stages.mark_failed, job.image_id, stage, str(exc))
            return "failed"
        except SoftTimeLimitExceeded:
            reason = f"exceeded the soft time limit of {settings.task_soft_time_limit_s} s"
            ctx.db(stages.mark_failed, job.image_id, stage, reason)
            return "failed"
        except Exception as exc:
            if task.request.retries >= task.max_retries:
                reason = f"gave up after {claim.attempts} attempts: {type(exc).__name__}: {exc}"
                log.exception("%s failed for %s", stage, job.image_id)
                ctx.db(stages.mark_failed, job.image_id, stage, reason)
                return "failed"
            log.warning(
                "%s attempt %d for %s failed, retrying: %r",
                stage,
                claim.attempts,
                job.image_id,
                exc,
            )
            TASKS.labels(stage, "retried").inc()
            raise task.retry(exc=exc, countdown=retry_delay_s(task.request.retries)) from exc
        ctx.db(stages.mark_done, job.image_id, stage)
        return "done"

    return run_stage
