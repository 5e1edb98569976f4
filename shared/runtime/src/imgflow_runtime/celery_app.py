"""Celery app factory carrying the decision record's safeguards, for workers and producers."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals
from kombu import Queue
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.celery import CeleryInstrumentor

from imgflow_contracts.queues import TASK_NAMES, Stage
from imgflow_contracts.settings import CommonSettings, WorkerSettings
from imgflow_runtime.telemetry import flush_tracing, setup_tracing
from imgflow_runtime.worker_metrics import serve_metrics


def _routes() -> dict[str, dict[str, str]]:
    return {TASK_NAMES[stage]: {"queue": stage.queue} for stage in Stage}


def celery_config(settings: WorkerSettings, stage: Stage) -> dict[str, Any]:
    """Worker configuration; every value here is a decision, see the comments."""
    return {
        "broker_url": settings.broker_url,
        # JSON only: a pickled payload from the broker would be remote code execution.
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        # State lives in PostgreSQL; results in Redis would only cost memory.
        "task_ignore_result": True,
        "result_expires": settings.result_expires_s,
        # Ack after the work, and requeue if the worker process dies mid-task.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit_s,
        "task_time_limit": settings.task_time_limit_s,
        "worker_max_tasks_per_child": settings.worker_max_tasks_per_child,
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_kb,
        # Must exceed the hard time limit, or Redis redelivers a task still running.
        "broker_transport_options": {"visibility_timeout": settings.broker_visibility_timeout_s},
        "broker_connection_retry_on_startup": True,
        # One queue per deployable, and its express queue: a worker consumes the one its
        # -Q names (the express worker, the express queue only).
        "task_default_queue": stage.queue,
        "task_queues": (Queue(stage.queue), Queue(stage.express_queue)),
        "task_routes": _routes(),
        "task_create_missing_queues": False,
        "worker_hijack_root_logger": False,
        # Flower's task pages; the worker-online heartbeats are sent either way.
        "worker_send_task_events": settings.worker_send_task_events,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "enable_utc": True,
    }


def make_worker_app(stage: Stage, settings: WorkerSettings | None = None) -> Celery:
    settings = settings or WorkerSettings()
    if settings.broker_visibility_timeout_s <= settings.task_time_limit_s:
        raise ValueError(
            "IMGFLOW_BROKER_VISIBILITY_TIMEOUT_S must exceed IMGFLOW_TASK_TIME_LIMIT_S, "
            "or a long task is delivered twice while it still runs"
        )
    app = Celery(f"imgflow-{stage.value}", set_as_current=False)
    app.conf.update(celery_config(settings, stage))
    serve_metrics(settings.metrics_port)
    _trace_each_child(f"imgflow-{stage.value}", settings.trace_dir)
    return app


def _trace_each_child(service_name: str, trace_dir: str | None) -> None:
    # Exporters run threads, which do not survive a fork: set up in each pool child.
    def init(**_: Any) -> None:
        setup_tracing(service_name, trace_dir)
        CeleryInstrumentor().instrument()
        AsyncPGInstrumentor().instrument()

    def flush(**_: Any) -> None:
        flush_tracing()

    signals.worker_process_init.connect(init, weak=False)
    # A child leaves (recycled after max tasks or memory, or the pool closing on a warm
    # shutdown) through os._exit: its batched spans go now or never.
    signals.worker_process_shutdown.connect(flush, weak=False)
    # The main process too, should it hold spans (a solo or threads pool).
    signals.worker_shutdown.connect(flush, weak=False)


def make_producer_app(settings: CommonSettings) -> Celery:
    """The API's handle for sending jobs; it never consumes."""
    app = Celery("imgflow-producer", set_as_current=False)
    app.conf.update(
        broker_url=settings.broker_url,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_routes=_routes(),
        broker_connection_retry_on_startup=False,
    )
    return app
