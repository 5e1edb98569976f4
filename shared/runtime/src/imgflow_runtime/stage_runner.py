"""The glue every worker shares: turn a domain handler into an idempotent Celery task.

A handler is a plain function ``handler(job, context)``. Around it, this module:

- claims the stage in PostgreSQL (a job for a deleted image, or a stage already done by an
  earlier delivery, is skipped), runs the handler and records done;
- skips quietly (no retry, no dead letter) a job whose image is deleted while it runs:
  the handler raises ``ImageGone``, or fails in any way and the image is found gone;
- fails the stage at once for ``PermanentError`` (a corrupt image: retrying cannot help);
- retries anything else, the claim and the bookkeeping included, with exponential backoff
  and jitter, since S3, PostgreSQL and Redis outages are transient;
- after the last retry, or past the soft time limit, fails the stage and keeps the job in
  the dead-letter store for an operator to replay; a message that does not parse goes
  there too. If even that cannot be written (PostgreSQL is down), the job is retried
  until it can: it is never acknowledged without a record of what happened to it;
- once the stage is settled (done, failed, or found done by an earlier delivery),
  enqueues the stages that wait for it (``queues.AFTER``). A crash between the two is
  covered twice: the job is not acknowledged yet, so it comes back and enqueues them
  again, and the sweeper re-drives a stage left pending after its predecessor finished.
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
import redis
from celery import Celery, Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from pydantic import ValidationError

from imgflow_contracts.payloads import ImageJob
from imgflow_contracts.queues import Stage, dependants
from imgflow_contracts.settings import WorkerSettings
from imgflow_runtime.aio import ProcessLoop
from imgflow_runtime.celery_app import make_producer_app
from imgflow_runtime.db import dead_letters, outbox, stages
from imgflow_runtime.db.pool import create_pool
from imgflow_runtime.failures import ImageGone, PermanentError
from imgflow_runtime.storage import ObjectStore
from imgflow_runtime.telemetry import current_context_carrier, mark_image
from imgflow_runtime.worker_metrics import QUEUE_WAIT, TASK_DURATION, TASKS

log = logging.getLogger(__name__)
T = TypeVar("T")
STAGE_QUEUES = [stage.queue for stage in Stage]


@dataclass
class WorkerContext:
    """Per-process resources a handler uses: the object store and PostgreSQL."""

    settings: WorkerSettings
    store: ObjectStore
    loop: ProcessLoop = field(default_factory=ProcessLoop)
    _pool: asyncpg.Pool | None = None
    _pool_pid: int = 0
    _producer: Celery | None = None
    _producer_pid: int = 0
    _broker: redis.Redis | None = None
    _broker_pid: int = 0

    def db(self, query: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``query(conn, *args)`` on a pooled connection and return its result."""

        async def run() -> T:
            async with (await self._get_pool()).acquire() as conn:
                return await query(conn, *args)

        return self.loop.run(run())

    def hand_on(self, job: ImageJob, kind: str = outbox.UPLOAD, express: bool = False) -> None:
        """Enqueue a stage that waited for this one, in fair scheduling (migration 0015)
        as the relay would: ``kind`` is the kind of work the finished stage was (its
        message says), so a bulk import's later stages stay behind new uploads too.

        - ``express`` (the relay sent the finished stage by the express lane, and its
          tenant still has little waiting: ``still_light``): to the stage's express
          queue while that is short, else to
          the queue itself if it is empty, else through the outbox, whose relay puts it at
          the head of the queue if the tenant is still light. Never to the tail behind
          someone else's jobs.
        - otherwise straight to the queue while it is short, else through the outbox,
          where the relay orders the backlog fairly across tenants.

        The idle path costs one round trip (the queues' lengths)."""
        settings = self.settings
        if settings.outbox_scheduling != "fair":
            self.send(job, kind)
            return
        express_depth = settings.outbox_express_queue_depth if express else 0
        try:
            queued, express_queued = self._lengths(job.stage.queue, job.stage.express_queue)
        except (redis.RedisError, OSError):
            queued = express_queued = None  # the broker is away: the outbox keeps the job
        # An express job goes straight to the queue only when nothing is ahead of it there.
        short = 1 if express else settings.outbox_broker_target_depth
        if express and express_queued is not None and express_queued < express_depth:
            self.send(job, kind, express=True, queue=job.stage.express_queue)
        elif queued is not None and queued < short:
            self.send(job, kind, express=express)
        else:
            # The task's trace context goes with the row, so the relay's publish (and the
            # next stage) stay in the upload's one trace. Taken here: db() runs on
            # another thread's loop, where this context is not current.
            self.db(outbox.enqueue, [job], current_context_carrier(), kind)

    def still_light(self, job: ImageJob) -> bool:
        """Whether the job's tenant still has little waiting (outbox.tenant_is_light), so
        that its express job's next stages may go by the express lane too. False when
        PostgreSQL cannot say: the ordinary path is always safe."""
        try:
            return self.db(
                outbox.tenant_is_light,
                job.image_id,
                STAGE_QUEUES,
                self.settings.outbox_express_max_waiting,
            )
        except Exception as exc:
            log.warning("cannot tell whether %s's tenant is light: %r", job.image_id, exc)
            return False

    def _lengths(self, queue: str, express_queue: str) -> tuple[int, int]:
        """Messages waiting in a stage's queue and in its express queue (one round trip)."""
        if self._broker is None or self._broker_pid != os.getpid():
            self._broker = redis.Redis.from_url(
                self.settings.broker_url, socket_timeout=2, socket_connect_timeout=2
            )
            self._broker_pid = os.getpid()
        with self._broker.pipeline(transaction=False) as pipe:
            pipe.llen(queue)
            pipe.llen(express_queue)
            queued, express_queued = pipe.execute()
        return int(queued), int(express_queued)

    def send(
        self,
        job: ImageJob,
        kind: str = outbox.UPLOAD,
        *,
        express: bool = False,
        queue: str | None = None,
    ) -> None:
        """Publish a job to its stage's queue, or ``queue`` (its express queue); Celery
        retries a broker blip itself. ``express``: marked as sent by the express lane."""
        # Per process, like the pool: a broker connection must not cross a fork.
        if self._producer is None or self._producer_pid != os.getpid():
            self._producer = make_producer_app(self.settings)
            self._producer_pid = os.getpid()
        headers = {outbox.KIND_HEADER: kind}
        if express:
            headers[outbox.LANE_HEADER] = outbox.EXPRESS
        self._producer.send_task(
            job.stage.task_name,
            kwargs=job.to_message(),
            queue=queue or job.stage.queue,
            headers=headers,
        )

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None or self._pool_pid != os.getpid():
            # No reset query on release: a stage's statements hold no session state (their
            # locks and settings are transaction-scoped), and the reset was a round trip on
            # each of the ~11 releases an image's three stages make.
            self._pool = await create_pool(
                self.settings.database_url, max_size=2, reset_session=False
            )
            self._pool_pid = os.getpid()
        return self._pool


Handler = Callable[[ImageJob, WorkerContext], None]


def message_kind(task: Task) -> str:
    """The kind of work (outbox.KINDS) a message's header says; a message without one
    (sent by an older relay, or by hand) is an upload's."""
    kind = getattr(task.request, outbox.KIND_HEADER, None)
    return kind if kind in outbox.KINDS else outbox.UPLOAD


def sent_express(task: Task) -> bool:
    """Whether the relay (or the worker before) sent this message by the express lane."""
    return getattr(task.request, outbox.LANE_HEADER, None) == outbox.EXPRESS


def retry_delay_s(retries: int, *, base: float = 1.0, cap: float = 120.0) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random.

    The fixed half guarantees the retries of one job span a known minimum time (an outage
    shorter than that cannot exhaust them); the random half spreads a crowd of jobs that
    failed together so they do not all come back at the same instant.
    """
    delay = min(cap, base * 2**retries)
    return delay / 2 + random.uniform(0, delay / 2)


class _Poison(Exception):
    """A message this worker can never process."""


def _parse(stage: Stage, message: dict[str, Any]) -> ImageJob:
    try:
        job = ImageJob.model_validate(message)
    except ValidationError as exc:
        raise _Poison(f"the message does not match ImageJob: {exc}") from exc
    if job.stage is not stage:
        raise _Poison(f"a {job.stage} job was delivered to the {stage} queue")
    return job


# Errors that say a server cannot be reached: asking PostgreSQL whether the image still
# exists could only wait for the same outage (up to the command timeout), so just retry.
_UNREACHABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    OSError,
    TimeoutError,
)


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, _UNREACHABLE)


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

    def backoff(task: Task) -> float:
        return retry_delay_s(
            task.request.retries, base=settings.retry_base_s, cap=settings.retry_cap_s
        )

    def record_or_retry(task: Task, exc: BaseException, write: Callable[[], None]) -> None:
        """Write the record of a give-up; if PostgreSQL refuses, retry until it can."""
        try:
            write()
        except Exception as db_exc:
            log.warning("cannot record the %s failure yet, retrying: %r", stage, db_exc)
            raise task.retry(exc=exc, countdown=backoff(task), max_retries=None) from db_exc

    # max_retries=None: this runner counts retries itself (settings.task_max_retries), so
    # that giving up is always recorded rather than left to Celery's MaxRetriesExceeded.
    @app.task(name=stage.task_name, bind=True, max_retries=None)
    def run_stage(self: Task, **message: Any) -> None:
        ctx = get_context()
        try:
            job = _parse(stage, message)
        except _Poison as exc:
            reason = str(exc)
            log.error("dead-lettering a message that does not parse: %s", reason)
            record_or_retry(
                self, exc, lambda: ctx.db(dead_letters.record_poison, stage, message, reason)
            )
            TASKS.labels(stage, "dead-lettered").inc()
            return

        mark_image(job.image_id)
        started = time.perf_counter()
        # The stages a done attempt released itself (one statement with the done mark);
        # None: ask PostgreSQL after any other outcome.
        released: list[Stage] | None = None
        try:
            outcome, released = attempt_once(job, ctx)
        except Retry:
            raise
        except ImageGone:
            log.info("skipping %s for %s: %s", stage, job.image_id, stages.Skip.IMAGE_GONE)
            outcome = "skipped"
        except SoftTimeLimitExceeded as exc:
            reason = f"exceeded the soft time limit of {settings.task_soft_time_limit_s} s"
            outcome = give_up(self, job, ctx, exc, reason)
        except Exception as exc:
            if not _unreachable(exc) and image_gone(job, ctx):
                # e.g. its original was deleted under it: a retry could only fail again
                log.info(
                    "skipping %s for %s: %s (the attempt failed with %r)",
                    stage,
                    job.image_id,
                    stages.Skip.IMAGE_GONE,
                    exc,
                )
                outcome = "skipped"
            else:
                outcome = retry_or_give_up(self, job, ctx, exc)
        finally:
            TASK_DURATION.labels(stage).observe(time.perf_counter() - started)
        enqueue_dependants(job, ctx, released, message_kind(self), sent_express(self))
        TASKS.labels(stage, outcome).inc()
        log.info(
            "%s %s for %s in %.0f ms",
            stage,
            outcome,
            job.image_id,
            (time.perf_counter() - started) * 1000,
        )

    def enqueue_dependants(
        job: ImageJob,
        ctx: WorkerContext,
        released: list[Stage] | None,
        kind: str,
        express: bool,
    ) -> None:
        """Enqueue what waited for this stage; an image deleted meanwhile has none left."""
        if not dependants(stage):
            return
        try:
            if released is None:
                released = ctx.db(stages.release_dependants, job.image_id, stage)
            # Asked once for all the stages released, and only for an express job.
            express = express and bool(released) and ctx.still_light(job)
            for next_stage in released:
                ctx.hand_on(job.model_copy(update={"stage": next_stage}), kind, express)
        except Exception as exc:
            # Settled already: failing the job now would run the stage again. The sweeper
            # re-drives pending stages whose predecessor has finished.
            log.warning(
                "could not enqueue what follows %s for %s; the sweeper will: %r",
                stage,
                job.image_id,
                exc,
            )

    def retry_or_give_up(task: Task, job: ImageJob, ctx: WorkerContext, exc: Exception) -> str:
        attempt = task.request.retries + 1
        if task.request.retries < settings.task_max_retries:
            log.warning(
                "%s attempt %d for %s failed, retrying: %r", stage, attempt, job.image_id, exc
            )
            TASKS.labels(stage, "retried").inc()
            raise task.retry(exc=exc, countdown=backoff(task)) from exc
        log.error("%s failed for %s after %d attempts", stage, job.image_id, attempt, exc_info=exc)
        reason = f"gave up after {attempt} attempts: {type(exc).__name__}: {exc}"
        return give_up(task, job, ctx, exc, reason)

    def give_up(
        task: Task, job: ImageJob, ctx: WorkerContext, exc: BaseException, reason: str
    ) -> str:
        attempts = task.request.retries + 1
        record_or_retry(
            task, exc, lambda: ctx.db(dead_letters.record_failure, job, reason, attempts)
        )
        return "dead-lettered"

    def image_gone(job: ImageJob, ctx: WorkerContext) -> bool:
        """True only when PostgreSQL says so; when it cannot answer, the job is retried."""
        try:
            return not ctx.db(stages.image_exists, job.image_id)
        except Exception:
            return False

    def attempt_once(job: ImageJob, ctx: WorkerContext) -> tuple[str, list[Stage] | None]:
        """Claim, run and record one attempt; returns the outcome (with the stages a done
        mark released) or raises to retry."""
        claim = ctx.db(stages.mark_running, job.image_id, stage)
        if isinstance(claim, stages.Skip):
            log.info("skipping %s for %s: %s", stage, job.image_id, claim.value)
            return "skipped", None
        QUEUE_WAIT.labels(stage).observe((claim.started_at - claim.queued_at).total_seconds())
        try:
            handler(job, ctx)
        except PermanentError as exc:
            if not ctx.db(stages.mark_failed, job.image_id, stage, str(exc)):
                raise ImageGone from exc
            log.warning("%s failed for %s: %s", stage, job.image_id, exc)
            return "failed", None
        released = ctx.db(stages.mark_done, job.image_id, stage)
        if released is None:
            raise ImageGone
        return "done", released

    return run_stage


__all__ = ["ImageGone", "PermanentError", "WorkerContext", "register_stage_task"]
